package commands

// `broker status` (on the client) and the hidden `broker whoami` (in the
// daemon) it asks: is a broker configured, can this user reach it, is it
// answering, and what does it let this user (or token) use.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

type BrokerWhoamiCmd struct{}

// BrokerWhoamiResult is what the daemon knows of the client that asked.
type BrokerWhoamiResult struct {
	UID   uint32 `json:"uid"`
	PID   int32  `json:"pid,omitempty"`
	Token string `json:"token,omitempty"`
	// Limited is false when the client may use every workspace; Grants
	// then is empty.
	Limited bool    `json:"limited"`
	Grants  []grant `json:"grants"`
	// VaultInitialised says whether the daemon's vault exists yet
	// (`agentsecrets init` through the broker creates it).
	VaultInitialised bool   `json:"vault_initialised"`
	VaultID          string `json:"vault_id,omitempty"`
}

func (c *BrokerWhoamiCmd) Run(env *Env) (*BrokerWhoamiResult, error) {
	client, err := brokerClient(env, "broker whoami")
	if err != nil {
		return nil, err
	}
	res := &BrokerWhoamiResult{UID: client.UID, PID: client.PID, Token: client.Token, Limited: env.limits != nil, Grants: []grant{}}
	if env.limits != nil {
		res.Grants = append(res.Grants, env.limits.grants...)
	}
	st, err := env.Store()
	switch {
	case errors.Is(err, vault.ErrNotInitialised):
	case err != nil:
		return nil, err
	default:
		res.VaultInitialised, res.VaultID = true, st.Config.VaultID
	}
	return res, nil
}

func (r *BrokerWhoamiResult) WriteText(w io.Writer) error {
	who := fmt.Sprintf("uid %d", r.UID)
	if r.Token != "" {
		who += " with token " + r.Token
	}
	grants := "every workspace"
	if r.Limited {
		grants = (&limits{grants: r.Grants}).list()
	}
	vault := "not initialised (run `agentsecrets init`)"
	if r.VaultInitialised {
		vault = "initialised (" + r.VaultID + ")"
	}
	_, err := fmt.Fprintf(w, "The broker sees %s; it may use %s. The broker's vault is %s.\n", who, grants, vault)
	return err
}

type BrokerStatusCmd struct{}

// BrokerStatusResult reports the broker as this user sees it. The
// service's own state (systemd/launchd) is the installer's part.
type BrokerStatusResult struct {
	// Configured: this process would send its commands to a broker.
	Configured bool `json:"configured"`
	// Source says why: "AGENTSECRETS_BROKER" or "standard socket"; or,
	// unconfigured, "AGENTSECRETS_BROKER=none" or "none".
	Source string `json:"source"`
	Socket string `json:"socket,omitempty"`
	// Reachable: this user could connect to the socket.
	Reachable bool `json:"reachable"`
	// Answering: the daemon ran `broker whoami` for us; Daemon is its
	// answer.
	Answering bool                `json:"answering"`
	Daemon    *BrokerWhoamiResult `json:"daemon,omitempty"`
	// Problem is the first thing that failed, with the command to run next.
	Problem *errcode.Report `json:"problem,omitempty"`
	// Service is the standard installation on this machine (`broker
	// install`), when there is one.
	Service *brokersvc.Status `json:"service,omitempty"`
	Notes
}

func (c *BrokerStatusCmd) Run(env *Env) (*BrokerStatusResult, error) {
	path, err := brokerd.Resolve(env.Getenv)
	if err != nil {
		return nil, err
	}
	res := &BrokerStatusResult{Socket: path}
	if svc := brokersvc.Inspect(env.ctx(), brokersvc.DefaultPlan(runtime.GOOS), brokersvc.Exec{}); svc.User.Exists || svc.ServiceFile.Present {
		res.Service = svc
	}
	switch v := env.Getenv(brokerd.EnvBroker); {
	case v == "none":
		res.Source = brokerd.EnvBroker + "=none"
	case v != "":
		res.Source = brokerd.EnvBroker
	case path != "":
		res.Source = "standard socket"
	default:
		res.Source = "none"
	}
	if path == "" {
		return res, nil
	}
	res.Configured = true
	// A vault of this user's own is not used while a broker is: say so,
	// or its secrets seem to have vanished.
	if d, err := env.Dirs(); err == nil {
		if _, err := os.Stat(d.ConfigFile()); err == nil {
			res.warn("this user still has a local vault in %s, which commands do not use while a broker is configured: move it with `agentsecrets broker migrate`", d.Config)
		}
	}
	var who BrokerWhoamiResult
	err = brokerJSON(env, path, nil, &who, "broker", "whoami")
	if err == nil {
		res.Reachable, res.Answering, res.Daemon = true, true, &who
		return res, nil
	}
	// Only on failure: a bare connection the daemon would log as dropped.
	if conn, derr := brokerd.Dial(env.ctx(), path); derr == nil {
		conn.Close()
		res.Reachable = true
	} else {
		err = derr
	}
	res.Problem = brokerd.Report(err)
	return res, nil
}

func (r *BrokerStatusResult) WriteText(w io.Writer) error {
	if !r.Configured {
		_, err := fmt.Fprintf(w, "No broker is configured (%s): commands run in this process, on this user's own vault.\n", r.Source)
		return err
	}
	fmt.Fprintf(w, "Broker: %s (from %s)\n", termEscape(r.Socket), r.Source)
	fmt.Fprintf(w, "  reachable: %s\n  answering: %s\n", yesNo(r.Reachable), yesNo(r.Answering))
	if r.Daemon != nil {
		fmt.Fprint(w, "  ")
		r.Daemon.WriteText(w)
	}
	if r.Problem != nil {
		fmt.Fprintf(w, "  problem:   %s\n  next:      %s\n", termEscape(r.Problem.Message), termEscape(r.Problem.Hint))
	}
	if r.Service != nil {
		state := r.Service.Service
		if state == "" {
			state = "no service manager runs it (see docs/broker.md, Without systemd)"
		}
		fmt.Fprintf(w, "Installed: user %s, service %s\n", termEscape(r.Service.User.Name), termEscape(state))
		for _, p := range r.Service.Problems {
			fmt.Fprintf(w, "  problem:   %s\n", termEscape(p))
		}
	}
	return nil
}

// brokerJSON runs one command line on the broker at path, as this process
// (its token included), and decodes its JSON result into out. stdin, if
// not nil, is the command's stdin (a value for `secrets set
// --from-stdin`: it goes only over the socket). A failed command comes
// back as its coded error.
func brokerJSON(env *Env, path string, stdin io.Reader, out any, args ...string) error {
	req, err := brokerRequest(env, append(append([]string{}, args...), "--format", "json"))
	if err != nil {
		return err
	}
	req.StdoutTTY = false
	if stdin == nil {
		stdin = strings.NewReader("")
	} else {
		req.StdinTTY = false
	}
	var buf bytes.Buffer
	status, err := brokerd.Exec(env.ctx(), path, req, brokerLocal(env, stdin, &buf))
	if err != nil {
		return err
	}
	if status != 0 {
		var e errcode.Envelope
		if json.Unmarshal(buf.Bytes(), &e) != nil || e.Error.Code == "" {
			return errcode.Errorf(errcode.Internal, "`%s` failed on the broker (exit %d) without an error report", strings.Join(args, " "), status)
		}
		return brokerd.ReportErr(e.Error)
	}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return errcode.Errorf(errcode.Internal, "`%s` on the broker: malformed result: %v", strings.Join(args, " "), err)
	}
	return nil
}
