package audit

import (
	"slices"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Filter selects records for Read. Zero fields select everything.
type Filter struct {
	// Last keeps only the newest Last records that pass the other filters.
	Last int
	// Secret keeps records that name this secret.
	Secret string
	// Host keeps records for this host: "api.example.com" matches
	// "api.example.com" and "api.example.com:8443"; "host:port" matches
	// only that port. Case does not matter.
	Host string
	// Decision keeps records with this decision (allowed, blocked, ...).
	Decision string
	// Since keeps records with Time at or after it.
	Since time.Time
	// ClientUID keeps the records the broker daemon made for this uid:
	// a broker's client reads its own records, never another user's.
	ClientUID string
}

func (f Filter) match(r *Record) bool {
	switch {
	case f.Secret != "" && !slices.Contains(r.Secrets, f.Secret):
		return false
	case f.Host != "" && !hostMatches(r.Host, f.Host):
		return false
	case f.Decision != "" && r.Decision != f.Decision:
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case f.ClientUID != "" && r.ClientUID != f.ClientUID:
		return false
	}
	return true
}

// Read returns the records that pass f, oldest to newest across rotated
// files; Last applies after the other filters. Torn and malformed lines are
// skipped: Verify is where they are reported. The result is never nil.
func (l *Log) Read(f Filter) ([]Record, error) {
	if f.Last < 0 {
		return nil, errcode.Errorf(errcode.Usage, "the number of records to read must be zero (all) or positive, not %d", f.Last)
	}
	segs, err := l.snapshot()
	if err != nil {
		return nil, err
	}
	defer closeAll(segs)
	out := []Record{}
	for _, s := range segs {
		if s.endsBefore(f.Since) {
			continue
		}
		err := eachLine(s, func(_ int, line []byte, terminated bool) bool {
			rec, kind, _ := parseLine(line, terminated)
			if kind != "" || !f.match(&rec) {
				return true
			}
			out = append(out, rec)
			if f.Last > 0 && len(out) >= 2*f.Last+64 {
				// Keep memory bounded by Last, not by the log's size.
				out = append(out[:0], out[len(out)-f.Last:]...)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	if f.Last > 0 && len(out) > f.Last {
		out = out[len(out)-f.Last:]
	}
	return out, nil
}

// appendSkew bounds how far a record's Time may run behind the record
// before it in the log: Time is set when Append (or Writer.Append) takes
// the record, and processes wait seconds at most for the lock in between.
const appendSkew = time.Minute

// endsBefore reports whether s is a rotated file (never written again)
// whose last record is older than since by more than appendSkew, so none
// of its records can pass a Since filter: reading a long history for the
// newest records (a team audit upload) then costs the active file, not
// every rotated one. Anything unreadable reads the file.
func (s segment) endsBefore(since time.Time) bool {
	if since.IsZero() || s.num == 0 || s.size == 0 {
		return false
	}
	line, terminated, err := lastLine(s.f, s.size)
	if err != nil {
		return false
	}
	rec, kind, _ := parseLine(line, terminated)
	return kind == "" && rec.Time.Add(appendSkew).Before(since)
}
