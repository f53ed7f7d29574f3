package e2e

// The server's database as the sync tests see it from outside: a fresh
// SQLite file or a fresh PostgreSQL database per test, direct SQL on it
// (to play a malicious or compromised server), and a dump of every byte it
// holds (for the canary scan).

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// The database kinds `agentsecrets server --db` takes.
const (
	dbSQLite   = "sqlite"
	dbPostgres = "postgres"
)

// SyncDB is one empty database of its own for one test.
type SyncDB struct {
	Kind string
	Spec string // the --db value
	path string // SQLite file
	url  string // PostgreSQL URL
	db   *sql.DB
}

// NewSyncDB makes a fresh database of the given kind. A PostgreSQL one is a
// new database with a random name in DATABASE_URL's cluster (the one
// scripts/with-postgres starts), dropped when the test ends, so tests stay
// independent. Without DATABASE_URL the test skips, or fails under
// AGENTSECRETS_TEST_REQUIRE_POSTGRES=1.
func NewSyncDB(t testing.TB, kind string) *SyncDB {
	t.Helper()
	if kind == dbSQLite {
		p := filepath.Join(t.TempDir(), "server.db")
		return &SyncDB{Kind: kind, Spec: "sqlite:" + p, path: p}
	}
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		if os.Getenv("AGENTSECRETS_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("DATABASE_URL is not set: run the tests under scripts/with-postgres")
		}
		t.Skip("no PostgreSQL: run under scripts/with-postgres (it sets DATABASE_URL) to include the PostgreSQL runs")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 6)
	rand.Read(raw)
	name := "e2e_" + hex.EncodeToString(raw)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return &SyncDB{Kind: kind, Spec: u.String(), url: u.String()}
}

// open connects to the database once, next to the running server.
func (d *SyncDB) open(t testing.TB) *sql.DB {
	t.Helper()
	if d.db != nil {
		return d.db
	}
	var err error
	if d.Kind == dbSQLite {
		// The server holds the file open in WAL mode; wait for its locks.
		d.db, err = sql.Open("sqlite", "file:"+d.path+"?_pragma=busy_timeout(5000)")
	} else {
		d.db, err = sql.Open("pgx", d.url)
	}
	if err != nil {
		t.Fatal(err)
	}
	d.db.SetMaxOpenConns(1)
	t.Cleanup(func() { d.db.Close() })
	return d.db
}

// rebind turns ? placeholders into PostgreSQL's $1, $2, …
func (d *SyncDB) rebind(q string) string {
	if d.Kind == dbSQLite {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Exec runs one statement (? placeholders) and fails unless it changed
// exactly want rows: a tamper that touched nothing would prove nothing.
func (d *SyncDB) Exec(t testing.TB, want int64, q string, args ...any) {
	t.Helper()
	res, err := d.open(t).Exec(d.rebind(q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != want {
		t.Fatalf("%s: %d rows changed (%v), want %d", q, n, err, want)
	}
}

// Bytes reads one BYTEA/BLOB value.
func (d *SyncDB) Bytes(t testing.TB, q string, args ...any) []byte {
	t.Helper()
	var b []byte
	if err := d.open(t).QueryRow(d.rebind(q), args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return b
}

// String reads one text value.
func (d *SyncDB) String(t testing.TB, q string, args ...any) string {
	t.Helper()
	var s string
	if err := d.open(t).QueryRow(d.rebind(q), args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// Dump is every byte the database holds where the server put it: the
// SQLite file with its -wal and -shm, or a pg_dump of the PostgreSQL
// database by the pg_dump of the cluster's own install.
func (d *SyncDB) Dump(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if d.Kind == dbSQLite {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if b, err := os.ReadFile(d.path + suffix); err == nil {
				out["the SQLite file "+filepath.Base(d.path+suffix)] = b
			} else if suffix == "" {
				t.Fatalf("the server's SQLite file: %v", err)
			}
		}
		return out
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(bins) == 0 {
		t.Fatal("no pg_dump under /usr/lib/postgresql/*/bin (scripts/with-postgres installs it)")
	}
	slices.SortFunc(bins, func(a, b string) int { return pgMajor(a) - pgMajor(b) })
	cmd := exec.Command(bins[len(bins)-1], "--no-owner", "--dbname", d.url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.Bytes())
	}
	if !bytes.Contains(b, []byte("secret_versions")) {
		t.Fatalf("pg_dump holds no secret_versions table: %.300s", b)
	}
	out["pg_dump of "+filepath.Base(d.url)] = b
	return out
}

func pgMajor(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(bin))))
	return n
}

// scanServer checks what the server side holds and what crossed the wire:
// the database's every byte (SQLite file and WAL, or pg_dump) and every
// recorded request and response, for every canary in every encoding. The
// database must hold the secret names in the clear (routing metadata), or
// the dump was not of the right database and proves nothing.
func (s *syncRun) scanServer(db *SyncDB, traffic *TrafficProxy) {
	s.t.Helper()
	dump := db.Dump(s.t)
	named := false
	for where, b := range dump {
		assertNoLeak(s.t, where, b, s.canaries)
		named = named || bytes.Contains(b, []byte("STRIPE_KEY"))
	}
	if !named {
		s.t.Errorf("the %s database holds no secret name STRIPE_KEY: the scan saw the wrong database", db.Kind)
	}
	scanTraffic(s.t, traffic, s.canaries)
}
