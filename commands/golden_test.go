package commands

import (
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/agentfiles"
	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite commands/testdata/golden/ from the text renderers")

const goldenDir = "testdata/golden"

// ctrl is appended to one field of each result: an ANSI colour escape, a
// carriage return, a C1 control and a bidi override, which text output
// must show escaped, never send to the terminal.
const ctrl = "\x1b[31mred\r\u009b\u202eevil"

// goldenTime is the one timestamp every result uses.
var goldenTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// goldenResults holds a representative result of every type with a text
// form, keyed by type name (the golden file is NAME.txt). Lists mix the
// states a renderer distinguishes.
func goldenResults() map[string]TextWriter {
	suspended := goldenTime
	bound := policy.Binding{Host: "api.example.com", Port: 8443, PathPrefix: "/v1", Methods: []string{"GET"}, Surfaces: []string{"header"}, CreatedAt: goldenTime}
	susp := bound
	susp.SuspendedAt, susp.SuspendReason = &suspended, "echoed 3 times"
	return map[string]TextWriter{
		"DoctorResult": &DoctorResult{Healthy: false, Checks: []Check{
			{Name: "backend", OK: true, Detail: "file vault, unlocked"},
			{Name: "index", OK: false, Detail: "index.json is group-readable" + ctrl, Fix: "chmod 600 index.json"},
		}},
		"SecretsImportResult": &SecretsImportResult{Workspace: "default", Project: "web", Imported: 1, Rejected: 1, Results: []ImportEntry{
			{Name: "STRIPE_KEY", Line: 1, Version: 1, Action: "created"},
			{Name: "BAD", Line: 2, Action: "rejected", Reason: "not a valid name" + ctrl},
		}},
		"InitResult": &InitResult{Created: true, Backend: "file", BackendReason: "no keychain" + ctrl, VaultID: "v-123",
			Paths:     Paths{Config: "/home/u/.config/agentsecrets", Data: "/home/u/.local/share/agentsecrets", State: "/home/u/.local/state/agentsecrets"},
			Workspace: "default", Project: "default", Next: []string{"agentsecrets secrets set NAME", "agentsecrets status"},
			AgentFiles: []agentfiles.Result{{Path: "AGENTS.md", Action: "created"}},
			Notes:      Notes{Warnings: []string{"the file vault's passphrase file is group-readable" + ctrl}}},
		"McpInstallResult": &McpInstallResult{Command: "/usr/local/bin/agentsecrets", Args: []string{"mcp", "serve"}, Scope: "user", Clients: []McpClientResult{
			{Client: "cursor", Title: "Cursor", Path: "/home/u/.cursor/mcp.json", Action: "updated", Backup: "/home/u/.cursor/mcp.json.agentsecrets-backup-20260102T030405Z"},
			{Client: "zed", Title: "Zed", Path: "/home/u/.config/zed/settings.json", Action: "added"},
			{Client: "codex", Title: "Codex", Action: "skipped", Reason: "not installed" + ctrl},
		}, Next: []string{"restart the client so it starts `agentsecrets mcp serve`"}},
		"BrokerTokenResult": &BrokerTokenResult{Name: "agent", UID: 1001, Grants: []grant{{Workspace: "w", Project: "p"}, {Workspace: "x"}}, Out: "/home/u/agent.token" + ctrl},
		"BrokerTokensResult": &BrokerTokensResult{UID: 1001, Tokens: []BrokerTokenResult{
			{Name: "agent", UID: 1001, Grants: []grant{{Workspace: "w", Project: "p"}}},
			{Name: "ci", UID: 1001, Grants: []grant{{Workspace: "x"}}},
		}},
		"BrokerWhoamiResult": &BrokerWhoamiResult{UID: 1001, PID: 4242, Token: "agent", Limited: true, Grants: []grant{{Workspace: "w", Project: "p"}},
			VaultInitialised: true, VaultID: "a90ef0a6"},
		"BrokerStatusResult": &BrokerStatusResult{Configured: true, Source: "AGENTSECRETS_BROKER", Socket: "/run/agentsecrets/broker.sock" + ctrl,
			Reachable: true, Problem: &errcode.Report{Code: "unavailable", Message: "lost the broker" + ctrl, Hint: "run `agentsecrets broker status`"},
			Service: &brokersvc.Status{OS: "linux", User: brokersvc.Account{Name: "agentsecrets", Exists: true, ID: "998"}, Service: "active" + ctrl,
				Problems: []string{"the socket directory is 0755" + ctrl}}},
		"BrokerMigrateResult": &BrokerMigrateResult{Socket: "/run/agentsecrets/broker.sock" + ctrl, SourceDeleted: true, BrokerReceiveResult: BrokerReceiveResult{
			Secrets: []MigratedSecret{
				{Workspace: "default", Project: "default", Name: "STRIPE_KEY", Version: 1, Action: "created"},
				{Workspace: "default", Project: "web", Name: "GITHUB_TOKEN", Version: 3, Action: "unchanged"},
			}, AllowlistAdded: 1, BindingsAdded: 2, ReleasesAdded: 0, Approved: true}},
		"McpServeResult": &McpServeResult{Transport: "stdio" + ctrl, Calls: 42},
		"ServerResult": &ServerResult{Address: "127.0.0.1:8787", Backend: "sqlite", DB: "sqlite:/home/u/.local/state/agentsecrets/server.db" + ctrl,
			Signup: "closed", StartedAt: goldenTime, StoppedAt: goldenTime},
		"ProjectListResult": &ProjectListResult{Workspace: "default", Projects: []ProjectInfo{
			{Workspace: "default", Name: "default", Current: true, Secrets: 3, CreatedAt: goldenTime},
			{Workspace: "default", Name: "web" + ctrl, Secrets: 0, CreatedAt: goldenTime},
		}},
		"ProxyStatusResult": &ProxyStatusResult{Running: true, Address: "127.0.0.1:8765", TokenFile: "/home/u/.local/state/agentsecrets/proxy.token" + ctrl,
			PID: 4242, StartedAt: goldenTime, Workspace: "default", Project: "web"},
		"ProxyLogsResult": &ProxyLogsResult{Records: []audit.Record{
			{ID: "a1", Time: goldenTime, FrontEnd: "call", Method: "GET", Host: "api.example.com", Path: "/v1/charges", Secrets: []string{"STRIPE_KEY"}, Styles: []string{"bearer"}, Status: 200, DurationMS: 12.3, Decision: audit.DecisionAllowed},
			{ID: "a2", Time: goldenTime, FrontEnd: "proxy", Method: "POST", Host: "evil.example", Path: "/x" + ctrl, Secrets: []string{"STRIPE_KEY"}, Styles: []string{"header"}, DurationMS: 0.4, Decision: audit.DecisionBlocked, Reason: "not_allowlisted", Code: "denied"},
		}},
		"VersionResult": &VersionResult{buildinfo.Info{Version: "1.2.3", Commit: "0123abc" + ctrl, Date: "2026-12-01T00:00:00Z", Modified: true,
			Go: "go1.26.0", OS: "linux", Arch: "amd64", Module: "github.com/agentsecrets/agentsecrets", Source: "release"}},
		"AuditVerifyResult": &AuditVerifyResult{audit.Verification{OK: false, Records: 10, Dir: "/state", Files: []string{"audit.log"},
			Problem: &audit.Problem{File: "audit.log", Line: 7, Kind: "chain", Detail: "prev hash does not match" + ctrl}}},
		"SchemaResult": &SchemaResult{Commands: []CommandSchema{{Command: "secrets set"}, {Command: "call" + ctrl}}},
		"SecretsWriteResult": &SecretsWriteResult{Workspace: "default", Project: "web", Secrets: []vault.PutResult{
			{Name: "STRIPE_KEY", Version: 2, Action: "updated"}, {Name: "NEW" + ctrl, Version: 1, Action: "created"},
		}},
		"SecretsListResult": &SecretsListResult{Workspace: "default", Project: "web", Secrets: []SecretInfo{
			{Name: "STRIPE_KEY", Version: 2, CreatedAt: goldenTime, UpdatedAt: goldenTime, Source: "set", Bindings: []policy.Binding{bound, susp}, Releases: []string{"env"}},
			{Name: "UNBOUND" + ctrl, Version: 1, CreatedAt: goldenTime, UpdatedAt: goldenTime, Source: "generate", RotateUpstream: true},
		}},
		"StatusResult": &StatusResult{Initialised: true, Version: "0.0.0-golden", VaultID: "v-123",
			Paths:     Paths{Config: "/c", Data: "/home/u/.local/share/agentsecrets", State: "/s"},
			Backend:   &BackendStatus{Kind: "keychain", Reason: "Secret Service", Reachable: false, Detail: "dbus: no reply" + ctrl},
			Workspace: "default", Project: "web", ProjectSource: "link", LinkFile: "/w/.agentsecrets", Secrets: 2, Workspaces: 1, Projects: 2, Allowlist: 3,
			ValueRelease: []ReleaseEntry{{Workspace: "default", Project: "web", Name: "DB_URL", Modes: []string{"env", "openclaw"}}},
			Suspended:    []SuspendedEntry{{Workspace: "default", Project: "web", Name: "STRIPE_KEY", Binding: susp, Reapprove: "agentsecrets secrets bind STRIPE_KEY api.example.com:8443/v1"}},
			Account:      &AccountStatus{Email: "dev@example.com", Server: "https://sync.example.com" + ctrl, SignedIn: true},
			Sync: []ProjectSyncStatus{
				{Workspace: "default", Project: "web", Server: "https://sync.example.com", LastPull: &suspended, CheckedAt: &suspended,
					Drift: []vault.Drift{{Name: "STRIPE_KEY", State: "remote_newer"}, {Name: "PAYSTACK_TEST_KEY", State: "local_only"}, {Name: "X" + ctrl, State: "conflict"}}},
				{Workspace: "default", Project: "api", Server: "https://sync.example.com", Drift: []vault.Drift{{Name: "A", State: "local_newer"}}},
			},
			IndexRevision: 9, RotateUpstreamCount: 2, RotateUpstream: []RotateEntry{{Workspace: "acme", Project: "web", Name: "STRIPE_KEY"}, {Workspace: "acme", Project: "web", Name: "DB" + ctrl}}},
		"WorkspaceListResult": &WorkspaceListResult{Workspaces: []WorkspaceInfo{
			{Name: "default", Current: true, Projects: []string{"default", "web"}, Allowlist: 2, CreatedAt: goldenTime, Location: "local"},
			{Name: "acme" + ctrl, Projects: []string{"default"}, CreatedAt: goldenTime, Location: "remote", Server: "https://sync.example.com", ID: "0123"},
			{Name: "team", Projects: []string{}, CreatedAt: goldenTime, Location: "remote_only", Server: "https://sync.example.com", ID: "4567"},
		}, RemoteUnavailable: "unavailable: connection refused" + ctrl},
		"SecretsDiffResult": diffResult(&agsync.DiffResult{Workspace: "default", Project: "web", CheckedAt: goldenTime, Secrets: []agsync.NameDiff{
			{Name: "STRIPE_KEY", State: "remote_newer", LocalVersion: 1, RemoteVersion: 2},
			{Name: "PAYSTACK_TEST_KEY", State: "local_only", LocalVersion: 1},
			{Name: "MINE", State: "local_newer", LocalVersion: 3, RemoteVersion: 1},
			{Name: "BOTH" + ctrl, State: "conflict", LocalVersion: 2, RemoteVersion: 2, RotateUpstream: true},
			{Name: "NEW", State: "remote_only", RemoteVersion: 1},
			{Name: "SAME", State: "in_sync", LocalVersion: 1, RemoteVersion: 1},
		}}),
		"SecretsPullResult": &SecretsPullResult{agsync.PullResult{Workspace: "default", Project: "web", Synced: 2, Allowlist: 3, Secrets: []agsync.PullEntry{
			{Name: "STRIPE_KEY", State: "remote_newer", Action: "updated", Version: 2, RemoteVersion: 2},
			{Name: "OLD" + ctrl, State: "remote_newer", Action: "deleted", RemoteVersion: 4},
			{Name: "MINE", State: "local_newer", Action: "skipped", Version: 3, RemoteVersion: 1},
			{Name: "SAME", State: "in_sync", Action: "unchanged", Version: 1, RemoteVersion: 1},
		}}},
		"SecretsPushResult": &SecretsPushResult{agsync.PushResult{Workspace: "default", Project: "web", Synced: 2, Allowlist: 2, Secrets: []agsync.PushEntry{
			{Name: "MINE", State: "local_newer", Action: "pushed", RemoteVersion: 2},
			{Name: "GONE" + ctrl, State: "local_newer", Action: "deleted", RemoteVersion: 3},
			{Name: "STRIPE_KEY", State: "remote_newer", Action: "skipped", RemoteVersion: 2},
		}}},
		"SecretsHistoryResult": &SecretsHistoryResult{agsync.HistoryResult{Workspace: "default", Project: "web", Name: "STRIPE_KEY", Versions: []agsync.HistoryEntry{
			{Version: 1, Author: "dev@example.com", AuthorID: "a1", CreatedAt: goldenTime},
			{Version: 2, Author: "b2" + ctrl, AuthorID: "b2", CreatedAt: goldenTime},
		}}},
		"ProjectLinkResult": &ProjectLinkResult{agsync.LinkResult{Workspace: "default", Project: "web" + ctrl, Created: true, AutoPush: true}},
		"WorkspacePublishResult": &WorkspacePublishResult{agsync.PublishResult{Workspace: "acme" + ctrl, ID: "0123", Server: "https://sync.example.com", Created: true,
			Projects: []*agsync.PushResult{{Workspace: "acme", Project: "default", Synced: 2}}}},
		"WorkspaceInviteResult": &WorkspaceInviteResult{InviteResult: agsync.InviteResult{Workspace: "acme" + ctrl, WorkspaceID: "0123", Email: "bob@example.com" + ctrl,
			Role: "member", InviteID: "89ab", Code: "asinv-aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt", State: "open"}, Approved: true},
		"WorkspaceInvitesResult": &WorkspaceInvitesResult{agsync.InvitesResult{
			Mine: []agsync.InviteInfo{{ID: "1", Workspace: "acme" + ctrl, Email: "ada@example.com", Role: "reader", State: "open", InvitedBy: "bob@example.com" + ctrl, CreatedAt: goldenTime}},
			Sent: []agsync.InviteInfo{
				{ID: "2", Workspace: "team", Email: "eve@example.com" + ctrl, Role: "member", State: "accepted", InvitedBy: "ada@example.com", CreatedAt: goldenTime, Fingerprint: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9"},
				{ID: "3", Workspace: "team", Email: "dan@example.com", Role: "admin", State: "open", InvitedBy: "ada@example.com", CreatedAt: goldenTime, CodeHere: true},
			},
			TeamNotes: agsync.TeamNotes{Completed: []agsync.InviteInfo{{ID: "4", Workspace: "team", Email: "cy@example.com", Role: "member", State: "completed"}}},
		}},
		"WorkspaceJoinResult": &WorkspaceJoinResult{agsync.JoinResult{Workspace: "acme" + ctrl, WorkspaceID: "0123", InviteID: "89ab", Role: "member",
			InvitedBy: "ada@example.com", State: "accepted", Next: "waiting for ada@example.com to complete the invite"}},
		"WorkspaceMembersResult": &WorkspaceMembersResult{agsync.MembersResult{Workspace: "acme", WorkspaceID: "0123", Verified: "bob@example.com" + ctrl, Members: []agsync.MemberInfo{
			{Email: "ada@example.com", AccountID: "a1", Role: "admin", Fingerprint: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9", AddedBy: "ada@example.com", AddedAt: goldenTime, PinnedAt: goldenTime, Verification: "self"},
			{Email: "bob@example.com" + ctrl, AccountID: "b2", Role: "reader", Fingerprint: "1111 2222 3333 4444 5555 6666 7777 8888", AddedBy: "ada@example.com", AddedAt: goldenTime, PinnedAt: goldenTime, VerifiedAt: &goldenTime, Verification: "verified"},
		}}},
		"WorkspaceTokenResult": &WorkspaceTokenResult{TokenResult: agsync.TokenResult{Workspace: "acme" + ctrl, WorkspaceID: "0123", Token: agsync.TokenInfo{
			Name: "ci", ID: "048ca5f05b9d80ada34394527834c597", Role: "reader", Projects: []string{"payments" + ctrl}, CreatedBy: "ada@example.com", CreatedAt: goldenTime,
			ExpiresAt: goldenTime.Add(30 * 24 * time.Hour), Fingerprint: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9"}}, Out: "/home/u/ci.token" + ctrl, Approved: true},
		"WorkspaceAuditResult": &WorkspaceAuditResult{agsync.AuditResult{Workspace: "acme", WorkspaceID: "0123", Batches: 3,
			Refused: []string{"batch 3: an audit batch failed the format check" + ctrl}, Records: []agsync.AuditEntry{
				{Member: "bob@example.com", AccountID: "b2", Verified: true, Batch: 1, Record: audit.Record{ID: "a1", Time: goldenTime, FrontEnd: "call", Method: "GET",
					Host: "api.example.com", Workspace: "acme", Project: "web", Secrets: []string{"STRIPE_KEY"}, Decision: audit.DecisionAllowed}},
				{Member: "", AccountID: "x9" + ctrl, Verified: false, Batch: 2, Record: audit.Record{ID: "a2", Time: goldenTime, FrontEnd: "proxy", Method: "POST",
					Host: "evil.example" + ctrl, Secrets: []string{"STRIPE_KEY", "GH_TOKEN"}, Decision: audit.DecisionBlocked, Reason: "not_allowlisted"}},
			}}},
		"WorkspaceTokensResult": &WorkspaceTokensResult{agsync.TokensResult{Workspace: "acme", WorkspaceID: "0123", Tokens: []agsync.TokenInfo{
			{Name: "ci", ID: "048ca5f05b9d80ada34394527834c597", Role: "reader", Projects: []string{"payments"}, CreatedBy: "ada@example.com" + ctrl, CreatedAt: goldenTime,
				ExpiresAt: goldenTime.Add(30 * 24 * time.Hour), LastUsedAt: &goldenTime},
			{Name: "deploy", ID: "17ce5b1e1bdb3bb6b6b0b6c5a3f1a0e2", Role: "member", Projects: []string{}, CreatedBy: "ada@example.com", CreatedAt: goldenTime,
				ExpiresAt: goldenTime.Add(90 * 24 * time.Hour), RevokedAt: &goldenTime},
		}}},
		"WorkspaceRemoveResult": &WorkspaceRemoveResult{RemoveResult: agsync.RemoveResult{Workspace: "acme" + ctrl, WorkspaceID: "0123", Removed: "bob@example.com" + ctrl,
			RemovedID: "b2", KeyVersion: 2, Members: 2, Reencrypted: 3, Projects: []agsync.RotatedProject{
				{Project: "payments", KeyVersion: 2, RotateUpstream: []string{"STRIPE_KEY", "DB" + ctrl}},
				{Project: "web", KeyVersion: 2, RotateUpstream: []string{"GITHUB_TOKEN"}},
				{Project: "empty", KeyVersion: 2, RotateUpstream: []string{}},
			}}, Approved: true},
		"AllowlistListResult": &AllowlistListResult{Workspace: "default", Hosts: []policy.AllowEntry{
			{Host: "api.example.com", AddedAt: goldenTime},
			{Host: "127.0.0.1", Port: 8080, AllowHTTP: true, AllowPrivate: true, AddedAt: goldenTime},
		}},
		"AccountResult": &AccountResult{Linked: true, SignedIn: true, Server: "https://sync.example.com", Email: "ada@example.com" + ctrl,
			AccountID: "acct-1", DeviceID: "dev-1", DeviceName: "laptop", SignedInAt: &goldenTime,
			SealKey: "0a1b 2c3d 4e5f 6071 8293 a4b5 c6d7 e8f9", SignKey: "1111 2222 3333 4444 5555 6666 7777 8888", Fingerprint: "9999 aaaa bbbb cccc dddd eeee ffff 0000", Checked: true,
			RecoveryKit: "/home/u/kit.txt", ServerNotified: new(bool), Next: []string{"agentsecrets account devices"},
			Notes: Notes{Warnings: []string{"the sync server could not be reached"}}},
		"AccountDevicesResult": &AccountDevicesResult{Revoked: "dev-2", Devices: []DeviceInfo{
			{ID: "dev-1", Name: "laptop", Current: true, CreatedAt: goldenTime, LastSeenAt: goldenTime},
			{ID: "dev-2", Name: "old" + ctrl, CreatedAt: goldenTime, LastSeenAt: goldenTime, RevokedAt: &goldenTime},
		}},
		"BrokerRunResult": &BrokerRunResult{Socket: "/run/agentsecrets/broker.sock", State: "/var/lib/agentsecrets", UID: 998},
		"BrokerInstallResult": &BrokerInstallResult{Plan: brokersvc.Plan{OS: "linux", User: "agentsecrets", Group: "agentsecrets", StateDir: "/var/lib/agentsecrets",
			SocketDir: "/run/agentsecrets", Binary: "/usr/local/lib/agentsecrets/agentsecrets", ServiceFile: "/etc/systemd/system/agentsecrets-broker.service",
			Clients: []brokersvc.Client{{Name: "alice"}, {Name: "bob" + ctrl, Scopes: []string{"default/web"}}}},
			Socket: "/run/agentsecrets/broker.sock", Steps: []brokersvc.Step{
				{What: "group agentsecrets", Action: "created", Detail: "gid 998"},
				{What: "member alice", Action: "unchanged"},
				{What: "service", Action: "skipped", Detail: "systemd is not running" + ctrl},
			}, RunAs: "/usr/local/lib/agentsecrets/agentsecrets broker run --as agentsecrets",
			Next: []string{"start the broker as root"}},
		"BrokerUninstallResult": &BrokerUninstallResult{Steps: []brokersvc.Step{
			{What: "user agentsecrets", Action: "removed"}, {What: "/run/agentsecrets", Action: "absent"},
			{What: "state directory", Action: "kept", Detail: "/var/lib/agentsecrets" + ctrl},
		}, Notes: Notes{Warnings: []string{"the broker's vault stays in /var/lib/agentsecrets"}}},
		"SecretsBindResult": &SecretsBindResult{Workspace: "default", Project: "web", Name: "STRIPE_KEY" + ctrl, Action: "added", Approved: true, Releases: []string{},
			Binding: &policy.Binding{Host: "api.example.com", Port: 8443, PathPrefix: "/v1" + ctrl, Methods: []string{"GET", "POST"}, Surfaces: []string{"header", "query"},
				HeaderNames: []string{"X-Api-Key"}, AllowRange: true, CreatedAt: goldenTime},
			Notes: Notes{Warnings: []string{"the binding's host is not allowlisted yet" + ctrl}}},
		"SecretsUnbindResult": &SecretsUnbindResult{Workspace: "default", Project: "web", Name: "STRIPE_KEY",
			Removed:  []policy.Binding{bound, {Host: "evil.example" + ctrl, Surfaces: []string{"query"}}},
			Releases: []string{"env", "openclaw"}, RemovedReleases: []string{}},
		"SecretsDeleteResult": &SecretsDeleteResult{Workspace: "default", Project: "web", Deleted: []string{"STRIPE_KEY", "OLD" + ctrl}},
		"WorkspaceResult": &WorkspaceResult{Created: true, Workspace: WorkspaceInfo{Name: "acme" + ctrl, Current: true, Projects: []string{"default"},
			Allowlist: 1, CreatedAt: goldenTime, Location: "local"}},
		"AllowlistResult": &AllowlistResult{Workspace: "default", Action: "updated", Approved: true,
			Entry:  policy.AllowEntry{Host: "127.0.0.1" + ctrl, Port: 8080, AllowHTTP: true, AllowPrivate: true, AddedAt: goldenTime},
			Before: &policy.AllowEntry{Host: "127.0.0.1" + ctrl, Port: 8080, AllowPrivate: true, AddedAt: goldenTime},
			Notes:  Notes{Warnings: []string{"127.0.0.1 is a private address" + ctrl}}},
		"ProjectResult": &ProjectResult{LinkFile: "/w/.agentsecrets/project.json" + ctrl, Fetched: true,
			Project: ProjectInfo{Workspace: "acme", Name: "web" + ctrl, Secrets: 1, CreatedAt: goldenTime}},
		"ProjectDeleteResult": &ProjectDeleteResult{Workspace: "default", Project: "old" + ctrl, DeletedSecrets: 2},
		"ProxyStopResult":     &ProxyStopResult{Stopped: true, WasRunning: true, PID: 4242},
		"BrokerReceiveResult": &BrokerReceiveResult{Secrets: []MigratedSecret{
			{Workspace: "default", Project: "default", Name: "STRIPE_KEY" + ctrl, Version: 1, Action: "created"},
		}, AllowlistAdded: 1, BindingsAdded: 2, ReleasesAdded: 0, Approved: true},
		"CallResult": &CallResult{Status: 201, Headers: map[string]string{"content-type": "application/json"},
			Body: json.RawMessage(`{"id":"ch_1","note":"<b>\u001b[31m</b>` + "\u009b\u202e" + `","echo":"[REDACTED]","list":[1,2]}`), BodyEncoding: "json",
			Redacted: true, DurationMS: 12.3, AuditID: "a1",
			Notes: Notes{Warnings: []string{"the response echoed an injected secret; every echo was replaced with [REDACTED]"}}},
		"AllowlistLogResult": &AllowlistLogResult{Workspace: "default", Changes: []policy.AllowlistChange{
			{At: goldenTime, Action: "add", Host: "api.example.com", Approved: true},
			{At: goldenTime, Action: "remove" + ctrl, Host: "127.0.0.1", Port: 8080, AllowHTTP: true, AllowPrivate: true},
		}},
	}
}

// TestGoldenText renders each result in text mode through the path Main
// uses (renderGuarded) and compares stdout and stderr with its golden
// file; -update-golden rewrites the files.
func TestGoldenText(t *testing.T) {
	for name, result := range goldenResults() {
		t.Run(name, func(t *testing.T) {
			env, out, errb := testEnvErr(t, t.TempDir())
			if err := renderGuarded(env, formatText, "", result); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if errb.Len() > 0 {
				got += "--- stderr ---\n" + errb.String()
			}
			// status names the platform it runs on.
			got = strings.ReplaceAll(got, "("+runtime.GOOS+"/"+runtime.GOARCH+")", "(GOOS/GOARCH)")
			if strings.ContainsAny(got, "\x1b\r\u009b\u202e") {
				t.Errorf("raw control characters reached the terminal:\n%q", got)
			}
			path := filepath.Join(goldenDir, name+".txt")
			if *updateGolden {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./commands -run TestGoldenText -update-golden)", err)
			}
			if got != string(want) {
				t.Errorf("text output of %s differs from %s (rerun with -update-golden if intended)\ngot:\n%s\nwant:\n%s", name, path, got, want)
			}
		})
	}
}

// TestGoldenCoversEveryTextWriter finds every type with a WriteText
// method in this package's sources: each must have a result in
// goldenResults and a golden file, and every golden file a type.
func TestGoldenCoversEveryTextWriter(t *testing.T) {
	fset := token.NewFileSet()
	sources, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]bool{}
	for _, src := range sources {
		if strings.HasSuffix(src, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, src, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "WriteText" {
				continue
			}
			typ := fn.Recv.List[0].Type
			if star, ok := typ.(*ast.StarExpr); ok {
				typ = star.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				writers[id.Name] = true
			}
		}
	}
	if len(writers) == 0 {
		t.Fatal("found no WriteText methods")
	}
	results := goldenResults()
	var problems []string
	for name := range writers {
		if _, ok := results[name]; !ok {
			problems = append(problems, name+" has no result in goldenResults")
		}
		if _, err := os.Stat(filepath.Join(goldenDir, name+".txt")); err != nil {
			problems = append(problems, name+" has no golden file (run with -update-golden)")
		}
	}
	for name := range results {
		if !writers[name] {
			problems = append(problems, name+" in goldenResults has no WriteText method")
		}
	}
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.txt"))
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".txt"); !writers[name] {
			problems = append(problems, f+" is the golden file of no TextWriter")
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Error(strings.Join(problems, "\n"))
	}
}
