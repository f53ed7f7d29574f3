package server

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// dialect is everything that differs between the two backends: the
// placeholder syntax, how a unique-key violation looks, and goose's name and
// lock for the database.
type dialect struct {
	name string
	// numbered placeholders ($1, $2) instead of ?.
	numbered bool
	unique   func(error) bool
	goose    goose.Dialect
	// locker makes concurrent replicas take turns running migrations;
	// nil where the database serialises writers itself (SQLite).
	locker func() (lock.SessionLocker, error)
}

var sqliteDialect = dialect{
	name: "sqlite",
	unique: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	goose: goose.DialectSQLite3,
}

var postgresDialect = dialect{
	name:     "postgres",
	numbered: true,
	unique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
	goose: goose.DialectPostgres,
	locker: func() (lock.SessionLocker, error) {
		return lock.NewPostgresSessionLocker()
	},
}

// rebind turns ? placeholders into $n for PostgreSQL. Queries are written
// once, with ?, and never contain a literal question mark.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// DefaultSQLitePath is where the server keeps its database when --db is not
// given: under the state directory, next to the proxy's files.
func DefaultSQLitePath(stateDir string) string { return filepath.Join(stateDir, "server.db") }

// ParseDB checks a --db value: sqlite:PATH or a postgres:// (postgresql://)
// URL. It returns the backend name and a form safe to print (a password in
// the URL is masked).
func ParseDB(spec string) (backend, display string, err error) {
	switch {
	case strings.HasPrefix(spec, "sqlite:"):
		if strings.TrimPrefix(spec, "sqlite:") == "" {
			return "", "", errcode.WithHint(errcode.New(errcode.Usage, "--db sqlite: needs a path"), "use --db sqlite:/path/to/server.db")
		}
		return "sqlite", spec, nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		u, err := url.Parse(spec)
		if err != nil {
			return "", "", errcode.WithHint(errcode.New(errcode.Usage, "--db is not a valid postgres:// URL"), "use --db postgres://USER@HOST:5432/DB")
		}
		return "postgres", u.Redacted(), nil
	}
	return "", "", errcode.WithHint(errcode.New(errcode.Usage, "--db must be sqlite:PATH or a postgres:// URL"), "use --db sqlite:/path/to/server.db or --db postgres://USER@HOST:5432/DB")
}

// poolSize bounds the connections a server process keeps, and keeps them
// open: database/sql's default of 2 idle connections made every request
// beyond the second open (and for SQLite, configure) a new connection.
const poolSize = 16

// Open connects to the database named by spec (see ParseDB), runs the
// embedded migrations and returns the store.
func Open(ctx context.Context, spec string) (*SQLStore, error) {
	backend, display, err := ParseDB(spec)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	var d dialect
	switch backend {
	case "sqlite":
		path := strings.TrimPrefix(spec, "sqlite:")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, errcode.Errorf(errcode.Unavailable, "create the directory of %s: %v", path, err)
		}
		// WAL lets readers run beside the one writer; busy_timeout makes
		// a writer wait for the lock instead of failing; _txlock=immediate
		// takes the write lock at BEGIN, so a transaction that read a head
		// cannot lose the race to upgrade its lock (SQLITE_BUSY_SNAPSHOT).
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		if db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode()); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "open %s: %v", display, err)
		}
		d = sqliteDialect
	default:
		cfg, err := pgx.ParseConfig(spec)
		if err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--db %s: %v", display, scrubURL(err, spec)), "use --db postgres://USER@HOST:5432/DB")
		}
		db = stdlib.OpenDB(*cfg)
		d = postgresDialect
	}
	db.SetMaxIdleConns(poolSize)
	db.SetMaxOpenConns(poolSize)
	s := &SQLStore{db: db, d: d}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "database %s: %v", display, scrubURL(err, spec)), "check that the database is running and --db is right")
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// scrubURL keeps a database error from echoing the URL (and its password).
func scrubURL(err error, spec string) string {
	msg := err.Error()
	if spec != "" {
		msg = strings.ReplaceAll(msg, spec, "<db url>")
	}
	if u, perr := url.Parse(spec); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// migrate applies the embedded migrations with goose's Provider (no goose
// globals). On PostgreSQL goose takes an advisory session lock, so replicas
// starting together run each migration once.
func (s *SQLStore) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return errcode.Errorf(errcode.Internal, "migrations: %v", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.d.locker != nil {
		l, err := s.d.locker()
		if err != nil {
			return errcode.Errorf(errcode.Internal, "migration lock: %v", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(s.d.goose, s.db, sub, opts...)
	if err != nil {
		return errcode.Errorf(errcode.Internal, "migrations: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "migrate the database: %v", err), "check the database and its permissions")
	}
	return nil
}

// SchemaVersion is the newest migration applied, for tests and `readyz`.
func (s *SQLStore) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version").Scan(&v)
	return v, err
}

// MigrationCount is the version of the newest embedded migration (the
// number its file name starts with): what SchemaVersion reports once all
// are applied, also while numbers are taken by branches not merged yet.
func MigrationCount() int {
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	n := 0
	for _, f := range files {
		v, _ := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		n = max(n, v)
	}
	return n
}

func dbError(what string, err error) error {
	return errcode.Errorf(errcode.Unavailable, "database: %s: %v", what, err)
}
