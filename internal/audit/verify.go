package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Problem kinds.
const (
	// KindBrokenLink: a record's prev is not the hash of the line before it,
	// because that line was edited, a line was removed or inserted, or lines
	// were reordered. Line is the record whose link broke.
	KindBrokenLink = "broken_link"
	// KindTorn: a line ends mid-record, from a write that was interrupted.
	KindTorn = "torn"
	// KindMalformed: a line that is not a JSON record with the required
	// fields (id, time, front_end, decision, prev).
	KindMalformed = "malformed"
	// KindMissingFile: a rotated file is missing from the numbering; File
	// names it and Line is 0.
	KindMissingFile = "missing_file"
)

// Verification is the result of Verify.
type Verification struct {
	OK bool `json:"ok"`
	// Records counts the records checked, up to the first problem.
	Records int `json:"records"`
	// Dir holds the files; Files are their names, oldest first.
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
	// Head is the hash of the newest line ("" for an empty log). The chain
	// cannot vouch for its newest records; comparing Head with a value
	// recorded earlier, somewhere else, can.
	Head string `json:"head"`
	// First problem found, nil when OK.
	Problem *Problem `json:"problem,omitempty"`
}

// Problem locates the first place the chain does not hold.
type Problem struct {
	File   string `json:"file"`
	Line   int    `json:"line"` // 1-based within File; 0 for missing_file
	Kind   string `json:"kind"` // broken_link | torn | malformed | missing_file
	Detail string `json:"detail"`
}

// Verify walks every file oldest to newest, recomputes each line's hash,
// checks each record's prev against it, and reports the first problem.
// Details never quote record content beyond ids and hashes.
//
// An edit or removal of the newest record(s) of the active file passes:
// no later record links to them (see the package comment and Head).
// A log that does not exist yet verifies as OK with no records.
func (l *Log) Verify() (*Verification, error) {
	segs, err := l.snapshot()
	if err != nil {
		return nil, err
	}
	defer closeAll(segs)
	v := &Verification{Dir: l.dir, Files: []string{}}
	for _, s := range segs {
		v.Files = append(v.Files, s.name)
	}

	prev, prevAt := "", "" // hash of the last line seen, and where it was
	nextNum := 1
	for _, s := range segs {
		if s.num > 0 {
			if s.num != nextNum {
				v.Problem = &Problem{File: rotatedName(nextNum), Kind: KindMissingFile,
					Detail: fmt.Sprintf("rotated file %s is missing: the files jump from %s to %s", rotatedName(nextNum), prevFileName(nextNum), s.name)}
				return v, nil
			}
			nextNum++
		}
		err := eachLine(s, func(n int, line []byte, terminated bool) bool {
			rec, kind, detail := parseLine(line, terminated)
			if kind == "" && rec.Prev != prev {
				kind = KindBrokenLink
				switch {
				case prev == "":
					detail = fmt.Sprintf("record %s links to %s but is the first record of the log: earlier records or files were removed", describeID(rec.ID), describeHash(rec.Prev))
				default:
					detail = fmt.Sprintf("record %s links to %s, but %s hashes to %s: that line was changed or removed, or records were inserted or reordered", describeID(rec.ID), describeHash(rec.Prev), prevAt, describeHash(prev))
				}
			}
			if kind != "" {
				v.Problem = &Problem{File: s.name, Line: n, Kind: kind, Detail: detail}
				return false
			}
			prev, prevAt = lineHash(line), fmt.Sprintf("%s line %d", s.name, n)
			v.Records++
			return true
		})
		if err != nil {
			return nil, err
		}
		if v.Problem != nil {
			return v, nil
		}
	}
	v.OK, v.Head = true, prev
	return v, nil
}

func prevFileName(n int) string {
	if n <= 1 {
		return "the start"
	}
	return rotatedName(n - 1)
}

// eachLine calls fn for each line of the segment's snapshot, numbered from
// 1, without its newline; terminated is false for a last line that has
// none. fn returns false to stop.
func eachLine(s segment, fn func(n int, line []byte, terminated bool) bool) error {
	br := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return ioError("read "+s.name, err)
		}
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		terminated := line[len(line)-1] == '\n'
		if terminated {
			line = line[:len(line)-1]
		}
		if !fn(n, line, terminated) || err == io.EOF {
			return nil
		}
	}
}

// stored is a Record as decoded from a line. Its Prev pointer shadows the
// embedded Record's (encoding/json prefers the shallower field), so a line
// without a "prev" key can be told from one with "prev": "".
type stored struct {
	Record
	Prev *string `json:"prev"`
}

// parseLine decodes one line. kind is "" for a good record, else torn or
// malformed with a detail that quotes nothing from the line. A last line
// that is a whole record and lacks only its newline is good: nothing of it
// was lost.
func parseLine(line []byte, terminated bool) (rec Record, kind, detail string) {
	var s stored
	if err := json.Unmarshal(line, &s); err != nil {
		switch {
		case truncated(line):
			// The line stops inside the JSON value: an interrupted write,
			// whether or not a later Append has ended it with a newline.
			return Record{}, KindTorn, fmt.Sprintf("the line stops after %d bytes, in the middle of a record: a write was interrupted", len(line))
		case !terminated:
			return Record{}, KindTorn, fmt.Sprintf("the file ends without a newline, in a line of %d bytes that is not a record", len(line))
		}
		// Never the error text: a time that fails to parse is quoted in it.
		if len(bytes.TrimSpace(line)) == 0 {
			return Record{}, KindMalformed, "empty line"
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return Record{}, KindMalformed, fmt.Sprintf("not valid JSON (error after byte %d)", syn.Offset)
		}
		return Record{}, KindMalformed, "not a JSON audit record (a field has the wrong type)"
	}
	rec = s.Record
	var missing string
	switch {
	case rec.ID == "":
		missing = "id"
	case rec.Time.IsZero():
		missing = "time"
	case rec.FrontEnd == "":
		missing = "front_end"
	case rec.Decision == "":
		missing = "decision"
	case s.Prev == nil:
		missing = "prev"
	}
	if missing != "" {
		return Record{}, KindMalformed, "record lacks the required field " + missing
	}
	rec.Prev = *s.Prev
	return rec, "", ""
}

// truncated reports whether line is the beginning of a JSON value that
// stops before the value ends, which is what an interrupted write leaves.
func truncated(line []byte) bool {
	var v json.RawMessage
	return errors.Is(json.NewDecoder(bytes.NewReader(line)).Decode(&v), io.ErrUnexpectedEOF)
}

// describeID names a record in a detail: its id if it looks like one.
func describeID(id string) string {
	if validID(id) {
		return id
	}
	return "(with an invalid id)"
}

// describeHash quotes a hash in a detail message; a prev that is not a
// hash is not quoted.
func describeHash(h string) string {
	if h == "" {
		return "nothing (an empty prev)"
	}
	if len(h) != 64 {
		return "a value that is not a SHA-256 hash"
	}
	for i := 0; i < len(h); i++ {
		if !isDigit(h[i]) && !(h[i] >= 'a' && h[i] <= 'f') {
			return "a value that is not a SHA-256 hash"
		}
	}
	return h
}
