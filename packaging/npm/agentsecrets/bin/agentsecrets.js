#!/usr/bin/env node
// The agentsecrets launcher: runs the native binary that npm installed
// from this platform's optional dependency (@agentsecrets/OS-ARCH). Nothing
// is downloaded, at install time or now. stdio is inherited, signals sent
// to this process reach the binary, and its exit status (or the signal
// that ended it) becomes this process's.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");

const pkg = `@agentsecrets/${process.platform}-${process.arch}`;
const exe = process.platform === "win32" ? "agentsecrets.exe" : "agentsecrets";

let binary;
try {
  binary = require.resolve(`${pkg}/bin/${exe}`);
} catch {
  process.stderr.write(
    `agentsecrets: no binary for ${process.platform}-${process.arch}: the optional package ${pkg} is not installed.\n` +
      `Reinstall without --omit=optional / --no-optional (npm i -g agentsecrets), or install another way: ` +
      `https://github.com/agentsecrets/agentsecrets/blob/main/docs/install-channels.md\n`,
  );
  process.exit(1);
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: false });

// A terminal's Ctrl-C signals the whole process group, so the binary gets
// it directly too; forwarding covers a signal sent to this process alone
// (kill PID, a supervisor), which would otherwise orphan the binary.
const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"].filter(
  (s) => process.platform !== "win32" || s === "SIGINT" || s === "SIGTERM",
);
const handlers = new Map();
for (const sig of forwarded) {
  const h = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  handlers.set(sig, h);
  process.on(sig, h);
}

child.on("error", (err) => {
  process.stderr.write(`agentsecrets: cannot run ${path.basename(binary)}: ${err.message}\n`);
  process.exit(1);
});

child.on("exit", (code, signal) => {
  if (signal) {
    // End as the binary ended: remove our handler and re-raise, so the
    // caller sees death by that signal rather than an exit status.
    const h = handlers.get(signal);
    if (h) process.removeListener(signal, h);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
