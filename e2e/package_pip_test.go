package e2e

// The pip channel: the host's wheel installed by the real pip into a fresh
// virtual environment with no index, its console script running the
// release's binary; the real pipx running it with no index, from the wheel
// and by its name; and the sdist refusing to build with its explanation.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func python(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import venv, ensurepip").Run()
	}
	if err != nil {
		missingPython(t, "python3 with venv and ensurepip", "apt install python3-venv", err)
	}
	return py
}

// missingPython fails the test where scripts/test made the Python tools
// required (AGENTSECRETS_TEST_REQUIRE_PYTHON), and skips it elsewhere.
func missingPython(t *testing.T, what, install string, err error) {
	t.Helper()
	if os.Getenv("AGENTSECRETS_TEST_REQUIRE_PYTHON") != "" {
		t.Fatalf("%s is required here (%s): %v", what, install, err)
	}
	t.Skipf("no %s: %s, or run `make test`", what, install)
}

func TestPackagePipWheel(t *testing.T) {
	py := python(t)
	b := channels(t, hostPlatform())
	wheel := hostWheel(t, b)
	venv := filepath.Join(t.TempDir(), "venv")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_CACHE_DIR=1"}
	runPy := func(exe string, args ...string) string {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", exe, args, err, out)
		}
		return string(out)
	}
	runPy(py, "-m", "venv", venv)
	pip := filepath.Join(venv, "bin", "pip")
	runPy(pip, "install", "--no-index", wheel)

	b.checkStamped(t, "pip console script", versionOf(t, env, filepath.Join(venv, "bin", "agentsecrets")))
	b.checkStamped(t, "python -m agentsecrets", versionOf(t, env, filepath.Join(venv, "bin", "python"), "-m", "agentsecrets"))

	// The exit status is the binary's own.
	cmd := exec.Command(filepath.Join(venv, "bin", "agentsecrets"), "no-such-command")
	cmd.Env = env
	viaPip := capture(t, cmd, cmd.Args[1:])
	cmd = exec.Command(binary, "no-such-command")
	cmd.Env = env
	direct := capture(t, cmd, cmd.Args[1:])
	if viaPip.Code == 0 || viaPip.Code != direct.Code || string(viaPip.Stdout) != string(direct.Stdout) {
		t.Errorf("unknown command: exit %d %q through pip, %d %q direct", viaPip.Code, viaPip.Stdout, direct.Code, direct.Stdout)
	}

	// No wheel fits: pip gets the sdist, which stops and says why.
	sdists, err := filepath.Glob(filepath.Join(b.Out, "pip", "*.tar.gz"))
	must(t, err)
	if len(sdists) != 1 {
		t.Fatalf("want one sdist, got %v", sdists)
	}
	cmd = exec.Command(pip, "install", "--no-index", sdists[0])
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("pip built the sdist:\n%s", out)
	}
	for _, want := range []string{"cannot be built", "npm i -g agentsecrets", "go install github.com/agentsecrets/agentsecrets@latest"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pip install SDIST says no %q:\n%s", want, out)
		}
	}
}

// hostWheel is the wheel for the host's platform among b's wheels (one
// per platform of a real snapshot, the host's alone otherwise).
func hostWheel(t *testing.T, b *channelBuild) string {
	t.Helper()
	tag := map[string]string{
		"linux/amd64": "manylinux_2_17_x86_64", "linux/arm64": "manylinux_2_17_aarch64",
		"darwin/amd64": "macosx_12_0_x86_64", "darwin/arm64": "macosx_12_0_arm64",
	}[hostPlatform()]
	wheels, err := filepath.Glob(filepath.Join(b.Out, "pip", "*-py3-none-*"+tag+"*.whl"))
	must(t, err)
	if tag == "" || len(wheels) != 1 {
		t.Fatalf("want the wheel of %s, got %v", hostPlatform(), wheels)
	}
	return wheels[0]
}

func pipx(t *testing.T) string {
	t.Helper()
	python(t)
	px, err := exec.LookPath("pipx")
	if err != nil {
		missingPython(t, "pipx", "apt install pipx", err)
	}
	return px
}

// TestPackagePipxRun: `pipx run` with pip kept off every index, in a pipx
// home of its own. pipx's own upgrade of its shared pip then fails (it
// says so on stderr and goes on); the package comes from the wheel file,
// or by name from the directory of wheels, where pip picks the host's.
func TestPackagePipxRun(t *testing.T) {
	px := pipx(t)
	b := channels(t, hostPlatform())
	wheel := hostWheel(t, b)
	root := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(root, "home"),
		"PIPX_HOME=" + filepath.Join(root, "pipx"), "PIPX_BIN_DIR=" + filepath.Join(root, "bin"),
		"PIP_NO_INDEX=1", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_CACHE_DIR=1",
	}
	b.checkStamped(t, "pipx run --spec WHEEL", versionOf(t, env, px, "run", "--pip-args=--no-index", "--spec", wheel, "agentsecrets"))
	byName := []string{px, "run", "--pip-args=--no-index --find-links=" + filepath.Join(b.Out, "pip"), "agentsecrets"}
	b.checkStamped(t, "pipx run agentsecrets", versionOf(t, env, byName...))

	// The exit status and the output are the binary's own.
	cmd := exec.Command(px, append(byName[1:], "no-such-command")...)
	cmd.Env = env
	viaPipx := capture(t, cmd, []string{"no-such-command"})
	cmd = exec.Command(binary, "no-such-command")
	cmd.Env = env
	direct := capture(t, cmd, cmd.Args[1:])
	if viaPipx.Code == 0 || viaPipx.Code != direct.Code || string(viaPipx.Stdout) != string(direct.Stdout) {
		t.Errorf("unknown command: exit %d %q through pipx, %d %q direct", viaPipx.Code, viaPipx.Stdout, direct.Code, direct.Stdout)
	}
}
