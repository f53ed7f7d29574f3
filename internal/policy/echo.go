package policy

import (
	"fmt"
	"slices"
	"time"
)

// The echo tripwire. Redaction is a net: it catches the forms of a value it
// knows, and an upstream that reflects agent-chosen bytes turns every
// redaction into a yes/no answer ("your guess was right"). So a redaction is
// not only repaired but counted, per binding (secret × origin), and past
// EchoThreshold echoes within EchoWindow the binding is suspended until a
// human re-approves it.
//
// Why 3 in 24 hours: an honest integration echoes a credential rarely, and
// when it does (a debug endpoint, an error page quoting the request) it
// does so on every call, so the human hears about it after the third call
// either way. A guessing attack needs one answer per guess: a prefix oracle
// over a 32-character key needs hundreds to thousands of requests, and a
// dictionary attack on a weak value needs at least one hit per candidate
// tested. Three answers per human approval bounds such an attack to three
// guesses a day, while one or two stray echoes (a retry of one debugging
// call) do not cut off a working integration. The window is a day so that
// an attack spread out slowly still trips within a working day's traffic;
// the count per binding is kept at EchoThreshold, so the state file stays
// small whatever the traffic.
const (
	EchoThreshold = 3
	EchoWindow    = 24 * time.Hour
)

// EchoEvent is one response in which a secret's value echoed from an
// origin.
type EchoEvent struct {
	Workspace string    `json:"workspace"`
	Project   string    `json:"project"`
	Secret    string    `json:"secret"`
	Scheme    string    `json:"scheme"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	At        time.Time `json:"at"`
}

// Origin is scheme://host:port of the event.
func (e EchoEvent) Origin() string {
	return e.Scheme + "://" + Target{Host: e.Host, Port: e.Port}.String()
}

func (e EchoEvent) sameBinding(o EchoEvent) bool {
	return e.Workspace == o.Workspace && e.Project == o.Project && e.Secret == o.Secret &&
		e.Scheme == o.Scheme && e.Host == o.Host && e.Port == o.Port
}

// EchoLog is the durable record of recent echo events, shared by every
// front end through a state file.
type EchoLog struct {
	Events []EchoEvent `json:"events"`
}

// Record adds events, drops those older than EchoWindow at now and keeps
// at most EchoThreshold per binding. It returns the events whose binding
// reached the threshold: the bindings to suspend.
func (l *EchoLog) Record(events []EchoEvent, now time.Time) []EchoEvent {
	l.Events = append(l.Events, events...)
	l.Prune(now)
	var tripped []EchoEvent
	for _, e := range events {
		n := 0
		for _, o := range l.Events {
			if o.sameBinding(e) {
				n++
			}
		}
		if n >= EchoThreshold {
			tripped = append(tripped, e)
		}
	}
	return tripped
}

// Prune drops events outside the window and all but the newest
// EchoThreshold of each binding.
func (l *EchoLog) Prune(now time.Time) {
	kept := make([]EchoEvent, 0, len(l.Events))
	for i := len(l.Events) - 1; i >= 0; i-- {
		e := l.Events[i]
		if now.Sub(e.At) > EchoWindow || e.At.After(now.Add(time.Minute)) {
			continue
		}
		n := 0
		for _, k := range kept {
			if k.sameBinding(e) {
				n++
			}
		}
		if n < EchoThreshold {
			kept = append(kept, e)
		}
	}
	slices.Reverse(kept)
	l.Events = kept
}

// Forget drops the events of secret in workspace/project from the origins
// b points at: a human re-approved the binding, so its count restarts.
func (l *EchoLog) Forget(workspace, project, secret string, b Binding) {
	l.Events = slices.DeleteFunc(l.Events, func(e EchoEvent) bool {
		return e.Workspace == workspace && e.Project == project && e.Secret == secret && b.MatchesOrigin(e.Scheme, e.Host, e.Port)
	})
}

// Suspend marks every binding in bs that points at e's origin suspended at
// now (except those a human exempted with AllowEcho), and reports whether
// it changed any.
func Suspend(bs []Binding, e EchoEvent, now time.Time) bool {
	changed := false
	for i := range bs {
		if bs[i].Suspended() || bs[i].AllowEcho || !bs[i].MatchesOrigin(e.Scheme, e.Host, e.Port) {
			continue
		}
		at := now.UTC()
		bs[i].SuspendedAt = &at
		bs[i].SuspendReason = fmt.Sprintf("%d responses from %s echoed the value within %s", EchoThreshold, e.Origin(), EchoWindow)
		changed = true
	}
	return changed
}
