package commands

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"

	"github.com/agentsecrets/agentsecrets/internal/agentfiles"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// The user's side of a command: the files a person names on the command
// line and the project links in their directory tree. A command normally
// runs where those are, and reaches them directly. Run by the broker
// daemon, it runs under another OS user that cannot (and must not) read
// the user's files, so each is an operation the client performs for it
// and answers over the socket (brokerd.Call). The client reads only what
// its own user can; nothing here gives the broker more than that.
type userSide interface {
	passphraseFile(path, flag string) ([]byte, error)
	readFile(path string, max int64) ([]byte, error)
	findLink(dir string) (*vault.Selection, string, error)
	writeLink(dir string, sel vault.Selection) (string, error)
	writeAgentFiles(dir string) ([]agentfiles.Result, error)
	// createFile writes a new private file (a token's --out, a recovery
	// kit); removeFile takes one back when what it was for failed.
	createFile(path, flag string, data []byte) error
	removeFile(path string)
	// lookPath finds env's program; spawn starts env's child and waits
	// for it (envcmd.go), where the user's processes run.
	lookPath(name string) (string, error)
	spawn(env *Env, spec childSpec, r *broker.Redactor) (childExit, error)
}

// localSide is the process's own filesystem.
type localSide struct{}

func (localSide) passphraseFile(path, flag string) ([]byte, error) {
	return readPassphraseFile(path, flag)
}

// readFile reads at most max+1 bytes, so the caller can tell "too large".
func (localSide) readFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

func (localSide) findLink(dir string) (*vault.Selection, string, error) { return findLink(dir) }
func (localSide) writeLink(dir string, sel vault.Selection) (string, error) {
	return writeLink(dir, sel)
}
func (localSide) writeAgentFiles(dir string) ([]agentfiles.Result, error) {
	return agentfiles.Write(dir)
}

func (localSide) removeFile(path string) { os.Remove(path) }

func (localSide) createFile(path, flag string, data []byte) error {
	return createPrivateFile(path, flag, data)
}

func (localSide) lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", notRunnable
	}
	return path, nil
}

func (localSide) spawn(env *Env, spec childSpec, r *broker.Redactor) (childExit, error) {
	return runChild(env, spec, r)
}

func (e *Env) user() userSide {
	if e.side != nil {
		return e.side
	}
	return localSide{}
}

// The operations of the wire, and their arguments and results.
const (
	opPassphraseFile = "passphrase_file"
	opReadFile       = "read_file"
	opFindLink       = "find_link"
	opWriteLink      = "write_link"
	opAgentFiles     = "agent_files"
	opCreateFile     = "create_file"
	opRemoveFile     = "remove_file"
	opLookPath       = "look_path"
	opSpawn          = "spawn"
)

type sideArgs struct {
	Path      string          `json:"path,omitempty"`
	Flag      string          `json:"flag,omitempty"`
	Max       int64           `json:"max,omitempty"`
	Dir       string          `json:"dir,omitempty"`
	Selection vault.Selection `json:"selection,omitzero"`
	Data      []byte          `json:"data,omitempty"`
}

type linkResult struct {
	Selection *vault.Selection `json:"selection,omitempty"`
	Path      string           `json:"path,omitempty"`
}

// remoteSide asks the client over the broker's socket.
type remoteSide struct{ sess *brokerd.Session }

func (r remoteSide) passphraseFile(path, flag string) ([]byte, error) {
	var b []byte
	err := r.sess.Call(opPassphraseFile, sideArgs{Path: path, Flag: flag}, &b)
	return b, err
}

func (r remoteSide) readFile(path string, max int64) ([]byte, error) {
	var b []byte
	err := r.sess.Call(opReadFile, sideArgs{Path: path, Max: max}, &b)
	return b, err
}

func (r remoteSide) findLink(dir string) (*vault.Selection, string, error) {
	var res linkResult
	err := r.sess.Call(opFindLink, sideArgs{Dir: dir}, &res)
	if err == nil && res.Selection != nil {
		// The client is the user's process, which an agent controls: its
		// answer is checked like a link file read here would be.
		if vault.CheckSpaceName("workspace", res.Selection.Workspace) != nil || vault.CheckSpaceName("project", res.Selection.Project) != nil {
			return nil, res.Path, errcode.WithHint(errcode.Errorf(errcode.Usage, "project link %s is malformed", res.Path),
				"fix it or rerun `agentsecrets project use NAME --link` in that directory")
		}
	}
	return res.Selection, res.Path, err
}

func (r remoteSide) writeLink(dir string, sel vault.Selection) (string, error) {
	var path string
	err := r.sess.Call(opWriteLink, sideArgs{Dir: dir, Selection: sel}, &path)
	return path, err
}

func (r remoteSide) writeAgentFiles(dir string) ([]agentfiles.Result, error) {
	var res []agentfiles.Result
	err := r.sess.Call(opAgentFiles, sideArgs{Dir: dir}, &res)
	return res, err
}

// removeFile asks the client: the daemon never removes a path a client
// named, which could be one of its own files.
func (r remoteSide) removeFile(path string) { r.sess.Call(opRemoveFile, sideArgs{Path: path}, nil) }

func (r remoteSide) createFile(path, flag string, data []byte) error {
	return r.sess.Call(opCreateFile, sideArgs{Path: path, Flag: flag, Data: data}, nil)
}

func (r remoteSide) lookPath(name string) (string, error) {
	var path string
	err := r.sess.Call(opLookPath, sideArgs{Path: name}, &path)
	return path, err
}

// spawn hands the child to the client: the values cross the socket here,
// once, after every check passed; the client masks with its own redactor
// of them, so r is not used.
func (r remoteSide) spawn(_ *Env, spec childSpec, _ *broker.Redactor) (childExit, error) {
	var x childExit
	err := r.sess.Call(opSpawn, spec, &x)
	spec.wipe()
	return x, err
}

// maxSideRead bounds what the broker may ask the client to read.
const maxSideRead = broker.MaxRequestBody // base64 in the answer frame stays under brokerd.MaxFrame

// answer runs one operation the broker asked for on this (the user's)
// side.
func (cs *clientSide) answer(op string, raw json.RawMessage) (any, error) {
	if op == opSpawn {
		return cs.spawn(raw)
	}
	var a sideArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "malformed %s arguments from the broker", op)
	}
	side := localSide{}
	switch op {
	case opPassphraseFile:
		return side.passphraseFile(a.Path, a.Flag)
	case opReadFile:
		if a.Max <= 0 || a.Max > maxSideRead {
			return nil, errcode.Errorf(errcode.Internal, "the broker asked to read %d bytes", a.Max)
		}
		b, err := side.readFile(a.Path, a.Max)
		if err != nil {
			// Only the cause crosses: the caller names the file as
			// userFileError allows.
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, errcode.New(errcode.NotFound, err.Error())
		}
		return b, nil
	case opFindLink:
		sel, path, err := side.findLink(a.Dir)
		return linkResult{Selection: sel, Path: path}, err
	case opWriteLink:
		return side.writeLink(a.Dir, a.Selection)
	case opAgentFiles:
		return side.writeAgentFiles(a.Dir)
	case opRemoveFile:
		side.removeFile(a.Path)
		return nil, nil
	case opCreateFile:
		err := side.createFile(a.Path, a.Flag, a.Data)
		clear(a.Data)
		return nil, err
	case opLookPath:
		if err := cs.checkProgram(a.Path); err != nil {
			return nil, err
		}
		return side.lookPath(a.Path)
	}
	return nil, errcode.Errorf(errcode.Internal, "the broker asked for an unknown operation %q", op)
}
