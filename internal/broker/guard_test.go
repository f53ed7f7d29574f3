package broker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestGuardCheckAddr(t *testing.T) {
	const (
		ok = ""
		P  = ReasonPrivate
		R  = ReasonReserved
		M  = ReasonMetadata
	)
	tests := []struct {
		addr          string
		want, private string // without and with allowPrivate
	}{
		// Public.
		{"8.8.8.8", ok, ok},
		{"1.1.1.1", ok, ok},
		{"93.184.216.34", ok, ok},
		{"2606:4700:4700::1111", ok, ok},
		{"2001:4860:4860::8888", ok, ok}, // in 2001::/23, not Teredo
		{"3fff:1000::1", ok, ok},         // just past 3fff::/20

		// Private: --allow-private opens these.
		{"127.0.0.1", P, ok},
		{"127.255.255.254", P, ok},
		{"10.0.0.1", P, ok},
		{"10.255.255.255", P, ok},
		{"172.16.0.1", P, ok},
		{"172.31.255.255", P, ok},
		{"172.15.255.255", ok, ok},
		{"172.32.0.0", ok, ok},
		{"192.168.1.1", P, ok},
		{"169.254.1.1", P, ok},
		{"169.254.169.1", P, ok},
		{"100.64.0.1", P, ok},
		{"100.127.255.255", P, ok},
		{"100.63.255.255", ok, ok},
		{"100.128.0.0", ok, ok},
		{"::1", P, ok},
		{"fe80::1", P, ok},
		{"febf:ffff::1", P, ok},
		{"fc00::1", P, ok},
		{"fd12:3456::1", P, ok},

		// Reserved: nothing opens these.
		{"0.0.0.0", R, R},
		{"0.1.2.3", R, R},
		{"192.0.0.1", R, R},
		{"192.0.0.255", R, R},
		{"198.18.0.1", R, R},
		{"198.19.255.255", R, R},
		{"198.20.0.0", ok, ok},
		{"192.0.2.1", R, R},
		{"198.51.100.1", R, R},
		{"203.0.113.1", R, R},
		{"224.0.0.1", R, R},
		{"239.255.255.250", R, R},
		{"240.0.0.1", R, R},
		{"255.255.255.255", R, R},
		{"::", R, R},
		{"ff02::1", R, R},
		{"ff0e::1", R, R},
		{"fec0::1", R, R},
		{"100::1", R, R},
		{"2001::1", R, R},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", R, R}, // Teredo
		{"2001:2::1", R, R},
		{"2001:db8::1", R, R},
		{"3fff::1", R, R},
		{"3fff:fff::1", R, R},
		{"4000::1", R, R},         // outside 2000::/3
		{"64:ff9b:0:0:1::", R, R}, // 0000::/8 but not NAT64

		// Metadata: never.
		{"169.254.169.254", M, M},
		{"169.254.169.253", M, M},
		{"169.254.170.2", M, M},
		{"169.254.170.23", M, M},
		{"169.254.0.23", M, M},
		{"169.254.42.42", M, M},
		{"100.100.100.200", M, M},
		{"192.0.0.192", M, M},
		{"168.63.129.16", M, M},
		{"fd00:ec2::254", M, M},
		{"fd00:ec2::253", M, M},
		{"fd00:ec2::23", M, M},
		{"fd20:ce::254", M, M},
		{"fd00:42::42", M, M},

		// IPv4-mapped: judged as the IPv4 address.
		{"::ffff:127.0.0.1", P, ok},
		{"::ffff:169.254.169.254", M, M},
		{"::ffff:8.8.8.8", ok, ok},
		{"::ffff:0.0.0.0", R, R},
		{"::ffff:10.1.2.3", P, ok},
		// IPv4-compatible and IPv4-translated: deprecated, reserved, unless
		// the embedded address is worse.
		{"::127.0.0.1", R, R},
		{"::8.8.8.8", R, R},
		{"::169.254.169.254", M, M},
		{"::ffff:0:8.8.8.8", R, R},
		{"::ffff:0:169.254.169.254", M, M},

		// NAT64: private as a whole; the embedded IPv4 must pass too.
		{"64:ff9b::7f00:1", P, ok},
		{"64:ff9b::8.8.8.8", P, ok},
		{"64:ff9b::10.0.0.1", P, ok},
		{"64:ff9b::169.254.169.254", M, M},
		{"64:ff9b::100.100.100.200", M, M},
		{"64:ff9b::0.0.0.0", R, R},
		{"64:ff9b::224.0.0.1", R, R},
		{"64:ff9b:1::8.8.8.8", P, ok},
		{"64:ff9b:1::169.254.169.254", M, M},
		{"64:ff9b:1:a9fe:a9:fe00::", M, M},      // /48 embedding of 169.254.169.254
		{"64:ff9b:1:ffa9:fe:a9fe::", M, M},      // /56 embedding
		{"64:ff9b:1:ffff:a9:fea9:fe00:0", M, M}, // /64 embedding

		// 6to4: judged as the embedded IPv4 address.
		{"2002:7f00:1::", P, ok},
		{"2002:a00:1::1", P, ok},
		{"2002:a9fe:a9fe::", M, M},
		{"2002:c000:201::", R, R},
		{"2002:808:808::1", ok, ok},

		// Zones pin a local interface: refused.
		{"fe80::1%eth0", R, R},
		{"fd12::1%1", R, R},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.addr)
		if got := CheckAddr(ip, false); got != tt.want {
			t.Errorf("CheckAddr(%s, false) = %q, want %q", tt.addr, got, tt.want)
		}
		if got := CheckAddr(ip, true); got != tt.private {
			t.Errorf("CheckAddr(%s, true) = %q, want %q", tt.addr, got, tt.private)
		}
	}
	if got := CheckAddr(netip.Addr{}, true); got != ReasonReserved {
		t.Errorf("CheckAddr(zero Addr) = %q, want %q", got, ReasonReserved)
	}
}

// guardResolver is a fake resolver that records every lookup.
type guardResolver struct {
	mu      sync.Mutex
	answer  func(call int) []netip.Addr // call counts from 1
	err     error
	lookups []string // "network host"
}

func answering(addrs ...string) *guardResolver {
	ips := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		ips[i] = netip.MustParseAddr(a)
	}
	return &guardResolver{answer: func(int) []netip.Addr { return ips }}
}

func (r *guardResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, network+" "+host)
	if r.err != nil {
		return nil, r.err
	}
	return r.answer(len(r.lookups)), nil
}

func (r *guardResolver) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lookups...)
}

var errConnectSuppressed = errors.New("test dialer: connect suppressed")

// recordingDialer records each address it is asked to connect to and stops
// before the connect, so tests with public addresses send nothing.
func recordingDialer() (*net.Dialer, func() []string) {
	var mu sync.Mutex
	var addrs []string
	d := &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		mu.Lock()
		defer mu.Unlock()
		addrs = append(addrs, address)
		return errConnectSuppressed
	}}
	return d, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), addrs...)
	}
}

// loopbackListener listens on 127.0.0.1:0 and returns its port.
func loopbackListener(t *testing.T) (*net.TCPListener, string) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// assertNoConnection fails if a connection reached ln. A dial that
// completed has its connection waiting in the backlog already, so a short
// deadline is enough.
func assertNoConnection(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	if err := ln.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatalf("listener on %s accepted a connection from %s", ln.Addr(), c.RemoteAddr())
	}
}

// Legacy IPv4 spellings of 127.0.0.1 are not netip literals, so they reach
// the resolver; whatever it answers is checked.
var legacyLoopback = []string{"0x7f000001", "2130706433", "017700000001", "127.1", "0177.0.0.1", "0x7f.1"}

func TestGuardLegacyLiteralsFakeResolver(t *testing.T) {
	ln, port := loopbackListener(t)
	for _, host := range legacyLoopback {
		if _, err := netip.ParseAddr(host); err == nil {
			t.Fatalf("%s parses as an IP literal; the test assumes it does not", host)
		}
		r := answering("127.0.0.1")
		g := &Guard{Resolver: r}
		conn, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(host, port))
		if err == nil {
			conn.Close()
			t.Fatalf("%s: dial succeeded", host)
		}
		var be *BlockedError
		if !errors.As(err, &be) || be.Reason != ReasonPrivate || be.Host != host || be.IP != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s: err = %v, want a private-address BlockedError for 127.0.0.1", host, err)
		}
		if got := r.calls(); len(got) != 1 || got[0] != "ip "+host {
			t.Errorf("%s: lookups = %q, want one lookup of the name as given", host, got)
		}
	}
	assertNoConnection(t, ln)
}

func TestGuardLegacyLiteralsDefaultResolver(t *testing.T) {
	ln, port := loopbackListener(t)
	g := &Guard{}
	for _, host := range legacyLoopback {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := g.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		cancel()
		if err == nil {
			conn.Close()
			t.Fatalf("%s: dial succeeded", host)
		}
		// Failing to resolve or being blocked are both fine; if it resolved,
		// it must have been blocked.
		var be *BlockedError
		if errors.As(err, &be) && be.Reason == "" {
			t.Errorf("%s: blocked without a reason: %v", host, err)
		}
		t.Logf("%s: %v", host, err)
	}
	assertNoConnection(t, ln)
}

func TestGuardRefusesIfAnyAddressIsBlocked(t *testing.T) {
	tests := []struct {
		answer []string
		reason string
		ip     string
	}{
		{[]string{"8.8.8.8", "127.0.0.1"}, ReasonPrivate, "127.0.0.1"},
		{[]string{"1.1.1.1", "2606:4700:4700::1111", "::1"}, ReasonPrivate, "::1"},
		{[]string{"8.8.8.8", "169.254.169.254"}, ReasonMetadata, "169.254.169.254"},
		{[]string{"8.8.8.8", "::ffff:10.0.0.1"}, ReasonPrivate, "::ffff:10.0.0.1"},
		{[]string{"8.8.8.8", "0.0.0.0"}, ReasonReserved, "0.0.0.0"},
		// The worst answer is reported, so the hint fits it.
		{[]string{"10.0.0.1", "169.254.169.254", "192.0.2.1"}, ReasonMetadata, "169.254.169.254"},
		{[]string{"10.0.0.1", "192.0.2.1"}, ReasonReserved, "192.0.2.1"},
	}
	for _, tt := range tests {
		// tcp4 too: a blocked IPv6 answer refuses even when only IPv4 would
		// be dialled.
		for _, network := range []string{"tcp", "tcp4"} {
			d, dialled := recordingDialer()
			g := &Guard{Resolver: answering(tt.answer...), Dialer: d}
			_, err := g.DialContext(context.Background(), network, "api.example.com:443")
			var be *BlockedError
			if !errors.As(err, &be) || be.Reason != tt.reason || be.IP.String() != tt.ip {
				t.Errorf("%v over %s: err = %v, want %s for %s", tt.answer, network, err, tt.reason, tt.ip)
			}
			if got := dialled(); len(got) != 0 {
				t.Errorf("%v over %s: dialled %q after a refusal", tt.answer, network, got)
			}
		}
	}
}

func TestGuardAllowPrivateDialsLoopback(t *testing.T) {
	ln, port := loopbackListener(t)
	r := answering("127.0.0.1")
	g := &Guard{Resolver: r}

	// Without --allow-private: refused, nothing arrives.
	_, err := g.DialContext(context.Background(), "tcp", "dev.local:"+port)
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("without allowPrivate: err = %v, want ErrBlockedAddress", err)
	}
	assertNoConnection(t, ln)
	if err := ln.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// With it: a real connection to the listener.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx := WithAllowPrivate(context.Background(), true)
	conn, err := g.DialContext(ctx, "tcp", "dev.local:"+port)
	if err != nil {
		t.Fatalf("with allowPrivate: %v", err)
	}
	defer conn.Close()
	select {
	case c, ok := <-accepted:
		if !ok {
			t.Fatal("accept failed")
		}
		defer c.Close()
		if c.RemoteAddr().String() != conn.LocalAddr().String() {
			t.Errorf("listener saw %s, dialer is %s", c.RemoteAddr(), conn.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection never arrived")
	}
	if got := conn.RemoteAddr().String(); got != "127.0.0.1:"+port {
		t.Errorf("dialled %s, want 127.0.0.1:%s", got, port)
	}
	if got := r.calls(); len(got) != 2 {
		t.Errorf("lookups = %q, want one per dial", got)
	}

	// Metadata stays shut with --allow-private.
	g.Resolver = answering("169.254.169.254")
	_, err = g.DialContext(ctx, "tcp", "dev.local:"+port)
	var be *BlockedError
	if !errors.As(err, &be) || be.Reason != ReasonMetadata {
		t.Errorf("metadata with allowPrivate: err = %v, want %s", err, ReasonMetadata)
	}
}

func TestGuardWithAllowPrivate(t *testing.T) {
	ctx := context.Background()
	if allowPrivateFrom(ctx) {
		t.Error("plain context allows private")
	}
	ctx = WithAllowPrivate(ctx, true)
	if !allowPrivateFrom(ctx) {
		t.Error("WithAllowPrivate(true) did not allow")
	}
	if allowPrivateFrom(WithAllowPrivate(ctx, false)) {
		t.Error("WithAllowPrivate(false) did not override")
	}
}

// A rebinding resolver answers public first and loopback after. The guard
// must resolve once per dial and connect to the address it checked.
func TestGuardDialsTheCheckedIP(t *testing.T) {
	r := &guardResolver{answer: func(call int) []netip.Addr {
		if call == 1 {
			return []netip.Addr{netip.MustParseAddr("8.8.8.8")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}}
	d, dialled := recordingDialer()
	g := &Guard{Resolver: r, Dialer: d}

	_, err := g.DialContext(context.Background(), "tcp", "rebind.example:443")
	if !errors.Is(err, errConnectSuppressed) {
		t.Fatalf("first dial: err = %v, want the suppressed connect", err)
	}
	if got := r.calls(); len(got) != 1 {
		t.Fatalf("first dial: lookups = %q, want exactly one", got)
	}
	if got := dialled(); len(got) != 1 || got[0] != "8.8.8.8:443" {
		t.Fatalf("first dial connected to %q, want the checked 8.8.8.8:443", got)
	}

	_, err = g.DialContext(context.Background(), "tcp", "rebind.example:443")
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("second dial: err = %v, want ErrBlockedAddress", err)
	}
	if got := r.calls(); len(got) != 2 {
		t.Errorf("second dial: lookups = %q, want one more", got)
	}
	if got := dialled(); len(got) != 1 {
		t.Errorf("second dial connected to %q", got[1:])
	}
}

func TestGuardDialOrderAndFamily(t *testing.T) {
	tests := []struct {
		network    string
		answer     []string
		wantLookup string
		wantDials  []string
	}{
		{"tcp", []string{"8.8.8.8", "1.1.1.1"}, "ip", []string{"8.8.8.8:443", "1.1.1.1:443"}},
		{"tcp", []string{"2606:4700:4700::1111", "1.1.1.1"}, "ip", []string{"[2606:4700:4700::1111]:443", "1.1.1.1:443"}},
		{"tcp4", []string{"2606:4700:4700::1111", "1.1.1.1"}, "ip4", []string{"1.1.1.1:443"}},
		{"tcp6", []string{"2606:4700:4700::1111", "1.1.1.1"}, "ip6", []string{"[2606:4700:4700::1111]:443"}},
		{"tcp", []string{"::ffff:1.1.1.1"}, "ip", []string{"1.1.1.1:443"}}, // dial what was checked
	}
	for _, tt := range tests {
		r := answering(tt.answer...)
		d, dialled := recordingDialer()
		g := &Guard{Resolver: r, Dialer: d}
		_, err := g.DialContext(context.Background(), tt.network, "api.example.com:443")
		if !errors.Is(err, errConnectSuppressed) {
			t.Errorf("%s %v: err = %v, want the first connect error", tt.network, tt.answer, err)
		}
		if got := r.calls(); len(got) != 1 || got[0] != tt.wantLookup+" api.example.com" {
			t.Errorf("%s %v: lookups = %q", tt.network, tt.answer, got)
		}
		if got := dialled(); strings.Join(got, " ") != strings.Join(tt.wantDials, " ") {
			t.Errorf("%s %v: dialled %q, want %q", tt.network, tt.answer, got, tt.wantDials)
		}
	}

	// No address of the wanted family: an error, not a nil connection.
	d, dialled := recordingDialer()
	g := &Guard{Resolver: answering("2606:4700:4700::1111"), Dialer: d}
	conn, err := g.DialContext(context.Background(), "tcp4", "api.example.com:443")
	if err == nil || conn != nil || len(dialled()) != 0 {
		t.Errorf("tcp4 with only IPv6: conn %v, err %v, dialled %q", conn, err, dialled())
	}
}

func TestGuardIPLiteralsSkipTheResolver(t *testing.T) {
	ln, port := loopbackListener(t)
	tests := []struct {
		host         string
		allowPrivate bool
		reason       string
	}{
		{"127.0.0.1", false, ReasonPrivate},
		{"::1", false, ReasonPrivate},
		{"::ffff:127.0.0.1", false, ReasonPrivate},
		{"0.0.0.0", true, ReasonReserved},
		{"::", true, ReasonReserved},
		{"169.254.169.254", true, ReasonMetadata},
		{"::ffff:169.254.169.254", true, ReasonMetadata},
		{"64:ff9b::7f00:1", false, ReasonPrivate},
		{"2002:7f00:1::", false, ReasonPrivate},
		{"fe80::1%eth0", true, ReasonReserved},
		{"fe80::1%25eth0", true, ReasonReserved}, // a URL-escaped zone still parses as one
	}
	for _, tt := range tests {
		r := &guardResolver{err: errors.New("resolver must not be called")}
		g := &Guard{Resolver: r}
		ctx := WithAllowPrivate(context.Background(), tt.allowPrivate)
		conn, err := g.DialContext(ctx, "tcp", net.JoinHostPort(tt.host, port))
		if err == nil {
			conn.Close()
			t.Fatalf("%s: dial succeeded", tt.host)
		}
		var be *BlockedError
		if !errors.As(err, &be) || be.Reason != tt.reason {
			t.Errorf("%s: err = %v, want %s", tt.host, err, tt.reason)
		}
		if got := r.calls(); len(got) != 0 {
			t.Errorf("%s: resolver called: %q", tt.host, got)
		}
	}
	assertNoConnection(t, ln)
}

func TestGuardErrors(t *testing.T) {
	tests := []struct {
		name, addr, answer string
		reason             string
		hint               string // substring; "" means the hint must not mention --allow-private
		message            []string
	}{
		{"private name", "api.internal:8080", "10.0.0.7", ReasonPrivate,
			"agentsecrets workspace allowlist add api.internal:8080 --allow-private",
			[]string{`"api.internal"`, "10.0.0.7", ReasonPrivate}},
		{"private literal v6", "[::1]:8080", "", ReasonPrivate,
			"agentsecrets workspace allowlist add [::1]:8080 --allow-private",
			[]string{"address ::1", ReasonPrivate}},
		{"metadata", "metadata.google.internal:80", "169.254.169.254", ReasonMetadata, "",
			[]string{`"metadata.google.internal"`, "169.254.169.254", ReasonMetadata}},
		{"reserved", "docs.example:443", "192.0.2.10", ReasonReserved, "",
			[]string{`"docs.example"`, "192.0.2.10", ReasonReserved}},
	}
	for _, tt := range tests {
		r := answering()
		if tt.answer != "" {
			r = answering(tt.answer)
		}
		g := &Guard{Resolver: r}
		_, err := g.DialContext(context.Background(), "tcp", tt.addr)
		if !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("%s: errors.Is(%v, ErrBlockedAddress) is false", tt.name, err)
			continue
		}
		var be *BlockedError
		if !errors.As(err, &be) || be.Reason != tt.reason {
			t.Errorf("%s: BlockedError = %+v, want reason %s", tt.name, be, tt.reason)
		}
		rep := errcode.Classify(err)
		if rep.Code != errcode.Denied || errcode.ExitCode(err) != 4 {
			t.Errorf("%s: code %s, exit %d, want denied, 4", tt.name, rep.Code, errcode.ExitCode(err))
		}
		if tt.hint != "" && !strings.Contains(rep.Hint, tt.hint) {
			t.Errorf("%s: hint %q, want it to contain %q", tt.name, rep.Hint, tt.hint)
		}
		if tt.hint == "" && strings.Contains(rep.Hint, "--allow-private") {
			t.Errorf("%s: hint %q suggests --allow-private, which cannot help", tt.name, rep.Hint)
		}
		for _, s := range tt.message {
			if !strings.Contains(rep.Message, s) {
				t.Errorf("%s: message %q, want it to contain %q", tt.name, rep.Message, s)
			}
		}
	}
}

func TestGuardBadInput(t *testing.T) {
	resolveErr := errors.New("lookup failed")
	tests := []struct {
		name, network, addr string
		resolver            *guardResolver
		code                errcode.Code
		is                  error
	}{
		{"udp", "udp", "api.example.com:53", answering("8.8.8.8"), errcode.Internal, nil},
		{"no port", "tcp", "api.example.com", answering("8.8.8.8"), errcode.Usage, nil},
		{"named port", "tcp", "api.example.com:https", answering("8.8.8.8"), errcode.Usage, nil},
		{"port too big", "tcp", "api.example.com:65536", answering("8.8.8.8"), errcode.Usage, nil},
		{"resolver error", "tcp", "api.example.com:443", &guardResolver{err: resolveErr}, errcode.Internal, resolveErr},
		{"no answer", "tcp", "api.example.com:443", answering(), errcode.Internal, nil},
		{"zone on a name", "tcp", "host%eth0:443", answering("8.8.8.8"), errcode.Denied, ErrBlockedAddress},
	}
	for _, tt := range tests {
		d, dialled := recordingDialer()
		g := &Guard{Resolver: tt.resolver, Dialer: d}
		conn, err := g.DialContext(context.Background(), tt.network, tt.addr)
		if err == nil || conn != nil {
			t.Errorf("%s: conn %v, err %v, want an error", tt.name, conn, err)
			continue
		}
		if got := errcode.Classify(err).Code; got != tt.code {
			t.Errorf("%s: code %s, want %s (%v)", tt.name, got, tt.code, err)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: err %v does not wrap %v", tt.name, err, tt.is)
		}
		if got := dialled(); len(got) != 0 {
			t.Errorf("%s: dialled %q", tt.name, got)
		}
	}
}

// The fuzz test's own copy of the rules, written independently of guard.go.
var (
	fuzzPrivate = prefixes("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"169.254.0.0/16", "100.64.0.0/10", "::1/128", "fe80::/10", "fc00::/7")
	fuzzNAT64    = prefixes("64:ff9b::/96", "64:ff9b:1::/48")
	fuzzMetadata = []string{"169.254.169.254", "169.254.169.253", "169.254.170.2", "169.254.170.23",
		"169.254.0.23", "169.254.42.42", "100.100.100.200", "192.0.0.192", "168.63.129.16",
		"fd00:ec2::254", "fd00:ec2::253", "fd00:ec2::23", "fd20:ce::254", "fd00:42::42"}
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func isMetadata(ip netip.Addr) bool {
	for _, m := range fuzzMetadata {
		if ip.Unmap() == netip.MustParseAddr(m) {
			return true
		}
	}
	return false
}

// inPrivateSet: the addresses --allow-private may open.
func inPrivateSet(ip netip.Addr) bool {
	ip = ip.Unmap()
	if inAny(fuzzPrivate, ip) || inAny(fuzzNAT64, ip) {
		return true
	}
	if b := ip.As16(); ip.Is6() && b[0] == 0x20 && b[1] == 0x02 { // 6to4
		return inAny(fuzzPrivate, netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return false
}

func FuzzCheckAddr(f *testing.F) {
	for _, s := range append([]string{"127.0.0.1", "10.1.2.3", "8.8.8.8", "0.0.0.0", "::1", "fe80::1",
		"64:ff9b::7f00:1", "2002:7f00:1::", "2001::1", "ff02::1", "::ffff:169.254.169.254"}, fuzzMetadata...) {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	valid := map[string]bool{"": true, ReasonPrivate: true, ReasonReserved: true, ReasonMetadata: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		var b [16]byte
		copy(b[:], in)
		for _, ip := range []netip.Addr{netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4]))} {
			def, priv := CheckAddr(ip, false), CheckAddr(ip, true)
			if !valid[def] || !valid[priv] {
				t.Fatalf("%s: reasons %q, %q outside the closed set", ip, def, priv)
			}
			if priv != "" && priv != def {
				t.Fatalf("%s: allowPrivate changed the reason %q to %q", ip, def, priv)
			}
			if def != "" && priv == "" && (def != ReasonPrivate || !inPrivateSet(ip)) {
				t.Fatalf("%s: %q opened by allowPrivate but not in the private set", ip, def)
			}
			if def == ReasonPrivate && priv != "" {
				t.Fatalf("%s: private but still %q with allowPrivate", ip, priv)
			}
			if isMetadata(ip) && (def != ReasonMetadata || priv != ReasonMetadata) {
				t.Fatalf("%s: metadata address gave %q, %q", ip, def, priv)
			}
		}

		// The same IPv4 address in every wrapping.
		v4 := netip.AddrFrom4([4]byte(b[:4]))
		a := v4.As4()
		mapped := netip.AddrFrom16(v4.As16())
		sixToFour := netip.AddrFrom16([16]byte{0x20, 0x02, a[0], a[1], a[2], a[3], 0, 0, b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13]})
		nat64 := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a[0], a[1], a[2], a[3]})
		compat := netip.AddrFrom16([16]byte{12: a[0], 13: a[1], 14: a[2], 15: a[3]})
		for _, allow := range []bool{false, true} {
			want := CheckAddr(v4, allow)
			if got := CheckAddr(mapped, allow); got != want {
				t.Fatalf("%s: %q but %s is %q", v4, want, mapped, got)
			}
			if got := CheckAddr(sixToFour, allow); got != want {
				t.Fatalf("%s: %q but 6to4 %s is %q", v4, want, sixToFour, got)
			}
			if got := CheckAddr(nat64, allow); allow && got != want || !allow && got == "" {
				t.Fatalf("%s: %q but NAT64 %s is %q (allowPrivate %v)", v4, want, nat64, got, allow)
			}
			if got := CheckAddr(compat, allow); got == "" && v4 != netip.IPv4Unspecified() && compat != netip.IPv6Loopback() {
				t.Fatalf("IPv4-compatible %s allowed", compat)
			}
			if isMetadata(v4) {
				for _, w := range []netip.Addr{mapped, sixToFour, nat64, compat} {
					if got := CheckAddr(w, allow); got != ReasonMetadata {
						t.Fatalf("%s wraps metadata %s but is %q", w, v4, got)
					}
				}
			}
		}
	})
}
