package broker

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Mask stands for an injected value in a Sent view.
const Mask = "****"

// Sent is one request as the broker sent it upstream (one per redirect
// hop), with every injected value masked: what `call -v` shows a person.
type Sent struct {
	Method string
	URL    string
	// Lines are the headers as "Name: value", sorted by name.
	Lines []string
	// BodyBytes is the length of the body sent.
	BodyBytes int64
}

// sentView describes out, built by outbound from ins. Injected values are
// masked by where they were put (Authorization, the injected header, the
// injected query parameter); what is left goes through r as well, so a
// value that reached the request another way (typed into -H) is replaced
// too.
func sentView(out *http.Request, ins []Injection, r *Redactor) Sent {
	masked := map[string]string{}
	query := map[string]bool{}
	for _, in := range ins {
		switch in.Style {
		case StyleBearer:
			masked["Authorization"] = "Bearer " + Mask
		case StyleBasic:
			masked["Authorization"] = "Basic " + Mask
		case StyleHeader:
			masked[http.CanonicalHeaderKey(in.Field)] = Mask
		case StyleQuery:
			query[in.Field] = true
		}
	}
	u := *out.URL
	u.RawQuery = maskQuery(u.RawQuery, query)
	s := Sent{Method: out.Method, URL: redacted(r, u.String()), BodyBytes: out.ContentLength}
	names := make([]string, 0, len(out.Header))
	for name := range out.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range out.Header[name] {
			if m, ok := masked[http.CanonicalHeaderKey(name)]; ok {
				v = m
			}
			s.Lines = append(s.Lines, redacted(r, name+": "+v))
		}
	}
	return s
}

// maskQuery replaces the value of every parameter named in fields (by its
// decoded name, as setQuery matches it).
func maskQuery(raw string, fields map[string]bool) string {
	if raw == "" || len(fields) == 0 {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); fields[k] || err == nil && fields[dk] {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

func redacted(r *Redactor, s string) string {
	if r == nil {
		return s
	}
	out, _ := r.String(s)
	return out
}

// String is the view in curl's -v form, one "> " line each.
func (s Sent) String() string {
	var b strings.Builder
	b.WriteString("> " + s.Method + " " + s.URL + "\n")
	for _, l := range s.Lines {
		b.WriteString("> " + l + "\n")
	}
	if s.BodyBytes > 0 {
		b.WriteString("> (body: " + strconv.FormatInt(s.BodyBytes, 10) + " bytes)\n")
	}
	return b.String()
}
