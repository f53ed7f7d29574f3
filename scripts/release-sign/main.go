// Command release-sign makes and checks minisign signatures of release
// artifacts (package release), so a release needs Go alone and users verify
// with the real minisign:
//
//	go run ./scripts/release-sign keygen -p release.pub -s release.key
//	go run ./scripts/release-sign sign -s release.key -m dist/checksums.txt -t 'agentsecrets 1.2.3'
//	go run ./scripts/release-sign verify -p release.pub -m dist/checksums.txt
//
// The secret key file is read, never printed; errors about it never quote it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/release"
)

const usage = `usage:
  release-sign keygen -p PUBFILE -s SECFILE
  release-sign sign -s SECFILE -m FILE [-x SIGFILE] [-t TRUSTED_COMMENT]
  release-sign verify (-p PUBFILE | -P PUBKEY) -m FILE [-x SIGFILE]
`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release-sign:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errUsage marks a mistake in the command line; main then prints usage.
var errUsage = errors.New("bad usage")

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand: %w", errUsage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pubFile := fs.String("p", "", "public key file")
	pubKey := fs.String("P", "", "public key (base64)")
	secFile := fs.String("s", "", "secret key file")
	message := fs.String("m", "", "file to sign or verify")
	sigFile := fs.String("x", "", "signature file (default FILE.minisig)")
	comment := fs.String("t", "", "trusted comment (default: the file's name)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%s: %v: %w", args[0], err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: %w", args[0], fs.Arg(0), errUsage)
	}
	if *sigFile == "" && *message != "" {
		*sigFile = *message + ".minisig"
	}
	switch args[0] {
	case "keygen":
		if *pubFile == "" || *secFile == "" {
			return fmt.Errorf("keygen: -p and -s are required: %w", errUsage)
		}
		return keygen(*pubFile, *secFile, stdout)
	case "sign":
		if *secFile == "" || *message == "" {
			return fmt.Errorf("sign: -s and -m are required: %w", errUsage)
		}
		if *comment == "" {
			*comment = "file:" + filepath.Base(*message)
		}
		return sign(*secFile, *message, *sigFile, *comment)
	case "verify":
		if (*pubFile == "") == (*pubKey == "") || *message == "" {
			return fmt.Errorf("verify: one of -p or -P, and -m, are required: %w", errUsage)
		}
		return verify(*pubFile, *pubKey, *message, *sigFile, stdout)
	default:
		return fmt.Errorf("unknown subcommand %q: %w", args[0], errUsage)
	}
}

func keygen(pubFile, secFile string, stdout io.Writer) error {
	k, err := release.GenerateKey(nil)
	if err != nil {
		return err
	}
	sec, _ := k.MarshalText()
	pub, _ := k.Public().MarshalText()
	// Create refuses an existing file: a key is never overwritten.
	if err := atomicfile.Create(secFile, sec, 0o600); err != nil {
		return fmt.Errorf("keygen: write secret key: %w", err)
	}
	if err := atomicfile.Create(pubFile, pub, 0o644); err != nil {
		os.Remove(secFile)
		return fmt.Errorf("keygen: write public key: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "public key %s: %s\n", k.ID, k.Public())
	return err
}

func sign(secFile, message, sigFile, comment string) error {
	text, err := os.ReadFile(secFile)
	if err != nil {
		return fmt.Errorf("sign: read secret key: %w", err)
	}
	k, err := release.ParseSecretKey(text)
	if err != nil {
		return fmt.Errorf("sign: %s: %w", secFile, err)
	}
	msg, err := os.ReadFile(message)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig, err := release.Sign(k, msg, comment)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(sigFile, sig, 0o644, ".release-sign-tmp-", nil); err != nil {
		return fmt.Errorf("sign: write signature: %w", err)
	}
	return nil
}

func verify(pubFile, pubKey, message, sigFile string, stdout io.Writer) error {
	text := []byte(pubKey)
	if pubFile != "" {
		var err error
		if text, err = os.ReadFile(pubFile); err != nil {
			return fmt.Errorf("verify: read public key: %w", err)
		}
	}
	p, err := release.ParsePublicKey(text)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	msg, err := os.ReadFile(message)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	comment, err := release.Verify(p, msg, sig)
	if err != nil {
		return fmt.Errorf("verify %s: %w", message, err)
	}
	_, err = fmt.Fprintf(stdout, "signature and comment signature verified\ntrusted comment: %s\n", comment)
	return err
}
