package broker

// The SSRF guard: stage 4 (Send) of the broker pipeline. The allowlist
// decides which *names* a credential may reach; this file decides which
// *addresses* a dial may reach, at dial time, on the IPs the name actually
// resolved to, so a DNS answer cannot turn an allowed name into a request to
// localhost or to the cloud metadata service.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Reasons CheckAddr reports. The set is closed: audit records and error
// messages carry exactly these strings.
const (
	// ReasonMetadata: a cloud instance-metadata or host-agent endpoint (see
	// guardMetadata), or an address embedding one. Always blocked, even for a
	// host allowed to reach private addresses: these hand out the machine's
	// own credentials.
	ReasonMetadata = "ssrf_metadata_address"
	// ReasonPrivate: loopback, RFC 1918, link-local, CGNAT, unique local, or a
	// NAT64 address. Blocked unless the allowlist entry has --allow-private.
	ReasonPrivate = "ssrf_private_address"
	// ReasonReserved: unspecified, multicast, broadcast, reserved,
	// documentation, benchmarking, IETF protocol assignments, deprecated
	// (site-local, IPv4-compatible), Teredo, discard-only, or outside IPv6
	// global unicast. Always blocked: none of them is a legitimate API server,
	// local or not, so --allow-private does not open them.
	ReasonReserved = "ssrf_reserved_address"
)

// ErrBlockedAddress is wrapped by every *BlockedError. Callers surface it as
// errcode.Denied (HTTP 403, exit 4) and audit the BlockedError's Reason.
var ErrBlockedAddress = errcode.New(errcode.Denied, "the target resolves to an address the SSRF guard blocks")

// BlockedError says which host, which IP and why. It unwraps to
// ErrBlockedAddress; use errors.As to read the Reason.
type BlockedError struct {
	Host   string     // the host as dialled: a name or an IP literal
	IP     netip.Addr // the address that was refused
	Reason string     // one of the Reason constants
}

func (e *BlockedError) Error() string {
	if !e.IP.IsValid() {
		return fmt.Sprintf("%s: host %q (%s)", ErrBlockedAddress.Message, e.Host, e.Reason)
	}
	if e.Host == e.IP.String() {
		return fmt.Sprintf("%s: address %s (%s)", ErrBlockedAddress.Message, e.IP, e.Reason)
	}
	return fmt.Sprintf("%s: host %q resolves to %s (%s)", ErrBlockedAddress.Message, e.Host, e.IP, e.Reason)
}

func (e *BlockedError) Unwrap() error { return ErrBlockedAddress }

// AuditReason is the guard's reason (see errcode.AuditOf).
func (e *BlockedError) AuditReason() string { return e.Reason }

// Guard dials only addresses that pass the address policy, and dials exactly
// the IP it checked (no DNS-rebinding window). The zero value is ready to use.
//
// The http.Transport using it must have Proxy set to nil: through a proxy,
// the guard would check the proxy's address instead of the target's.
type Guard struct {
	// Resolver looks up host names; nil means net.DefaultResolver.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// Dialer dials the checked IP; nil means a net.Dialer with a 10 s timeout
	// and 30 s keep-alive.
	Dialer *net.Dialer
}

// allowPrivateKey is the context key WithAllowPrivate sets.
type allowPrivateKey struct{}

// WithAllowPrivate marks a dial as permitted to reach private/loopback
// addresses (an allowlist entry added with --allow-private). Cloud metadata
// and reserved addresses stay blocked.
func WithAllowPrivate(ctx context.Context, allow bool) context.Context {
	return context.WithValue(ctx, allowPrivateKey{}, allow)
}

func allowPrivateFrom(ctx context.Context) bool {
	allow, _ := ctx.Value(allowPrivateKey{}).(bool)
	return allow
}

// DialContext is an http.Transport.DialContext. It resolves the host once,
// refuses the dial if ANY resolved address is blocked (a resolver answering
// a public IP and loopback must not get a second chance on retry), then dials
// the allowed addresses in order, by IP literal, never re-resolving the name.
//
// A refusal is a *BlockedError wrapped with a hint (errcode.Denied). Resolver
// and dialer failures are returned with context but uncoded: Send classifies
// transport failures as it does any other.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var lookupNet string
	switch network {
	case "tcp":
		lookupNet = "ip"
	case "tcp4":
		lookupNet = "ip4"
	case "tcp6":
		lookupNet = "ip6"
	default:
		return nil, errcode.Errorf(errcode.Internal, "ssrf guard: unsupported network %q", network)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "ssrf guard: invalid address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "ssrf guard: invalid port in %q", addr)
	}

	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		// An IP literal skips DNS but not the check; a zone (fe80::1%eth0)
		// makes CheckAddr refuse it.
		ips = []netip.Addr{ip}
	} else if strings.Contains(host, "%") {
		// A zone on something that is not an IP literal: never a host name.
		return nil, blockedError(host, portText, netip.Addr{}, ReasonReserved)
	} else {
		ips, err = g.resolver().LookupNetIP(ctx, lookupNet, host)
		if err != nil {
			return nil, fmt.Errorf("ssrf guard: resolve %q: %w", host, err)
		}
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}

	// Report the worst blocked address, so the hint never offers
	// --allow-private when another answer is metadata or reserved.
	allowPrivate := allowPrivateFrom(ctx)
	worst, worstIP := classPublic, netip.Addr{}
	for _, ip := range ips {
		c := classifyAddr(ip)
		if c == classPrivate && allowPrivate {
			continue
		}
		if c > worst {
			worst, worstIP = c, ip
		}
	}
	if worst != classPublic {
		return nil, blockedError(host, portText, worstIP, worst.reason())
	}

	dialer := g.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	var firstErr error
	for _, ip := range ips {
		// Dial the form that was checked: CheckAddr judged ::ffff:a.b.c.d as
		// a.b.c.d, so that is what goes on the wire.
		ip = ip.Unmap()
		if network == "tcp4" && !ip.Is4() || network == "tcp6" && !ip.Is6() {
			continue
		}
		conn, err := dialer.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = &net.DNSError{Err: "no " + network + " address", Name: host, IsNotFound: true}
	}
	return nil, firstErr
}

// ReachesPrivate reports whether host is, or resolves to, an address that
// only an allowlist entry with --allow-private may dial. A denial asks it,
// so that the one allowlist command its hint names carries that flag too;
// a lookup that fails or is slow answers false, and the guard still
// decides at dial time.
func (g *Guard) ReachesPrivate(ctx context.Context, host string) bool {
	ips := []netip.Addr{}
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = append(ips, ip)
	} else if !strings.Contains(host, "%") {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		ips, _ = g.resolver().LookupNetIP(ctx, "ip", host)
	}
	for _, ip := range ips {
		if CheckAddr(ip, false) == ReasonPrivate {
			return true
		}
	}
	return false
}

func (g *Guard) resolver() interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
} {
	if g.Resolver == nil {
		return net.DefaultResolver
	}
	return g.Resolver
}

// blockedError builds the refusal: a *BlockedError with the command a human runs
// to let this host reach private addresses, or, for addresses no flag opens,
// a hint that says so without suggesting one.
func blockedError(host, port string, ip netip.Addr, reason string) error {
	var hint string
	switch reason {
	case ReasonPrivate:
		hint = "if " + host + " is a local server you trust, a human runs `agentsecrets workspace allowlist add " +
			net.JoinHostPort(host, port) + " --allow-private`"
	case ReasonMetadata:
		hint = "cloud metadata addresses are always blocked, even for hosts allowed to reach private addresses"
	default:
		hint = "reserved, multicast, documentation and zoned addresses are always blocked; check what the host resolves to"
	}
	return errcode.WithHint(&BlockedError{Host: host, IP: ip, Reason: reason}, hint)
}

// CheckAddr classifies one IP. reason is "" when allowed, else one of the
// Reason constants. allowPrivate opens ReasonPrivate only.
func CheckAddr(ip netip.Addr, allowPrivate bool) (reason string) {
	c := classifyAddr(ip)
	if c == classPrivate && allowPrivate {
		return ""
	}
	return c.reason()
}

// addrClass orders the classes by severity, so the worse of two
// interpretations of one address is simply the larger.
type addrClass int

const (
	classPublic addrClass = iota
	classPrivate
	classReserved
	classMetadata
)

func (c addrClass) reason() string {
	switch c {
	case classPrivate:
		return ReasonPrivate
	case classReserved:
		return ReasonReserved
	case classMetadata:
		return ReasonMetadata
	}
	return ""
}

// guardMetadata are cloud instance-metadata services and host agents. They
// serve the machine's own credentials, so nothing unlocks them. Most sit in
// link-local or unique local space; 168.63.129.16 is public space.
var guardMetadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle… instance metadata
	netip.MustParseAddr("169.254.169.253"), // AWS VPC DNS resolver (answers internal names)
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata and credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS Pod Identity Agent credentials
	netip.MustParseAddr("169.254.0.23"),    // Tencent Cloud metadata
	netip.MustParseAddr("169.254.42.42"),   // Scaleway metadata
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud (classic) metadata
	netip.MustParseAddr("168.63.129.16"),   // Azure WireServer / host agent (a public address only Azure VMs reach)
	netip.MustParseAddr("fd00:ec2::254"),   // AWS instance metadata over IPv6
	netip.MustParseAddr("fd00:ec2::253"),   // AWS VPC DNS resolver over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS Pod Identity Agent over IPv6
	netip.MustParseAddr("fd20:ce::254"),    // GCP metadata over IPv6
	netip.MustParseAddr("fd00:42::42"),     // Scaleway metadata over IPv6
}

type addrRange struct {
	prefix netip.Prefix
	class  addrClass
}

// guardRanges lists the special-purpose blocks (IANA registries) that are not
// public. classPrivate is what --allow-private opens: the places a developer's
// own server lives. Everything classReserved stays shut because no legitimate
// server, local or remote, is reached through it:
//   - 0.0.0.0/8 and :: mean "this host": connecting to 0.0.0.0 reaches
//     localhost on Linux, so it is a loopback bypass, never a target;
//   - multicast, broadcast and 240/4 are not unicast destinations;
//   - documentation and benchmarking blocks are never routed, so an answer
//     in them is a misconfiguration or a trick;
//   - site-local is deprecated, and 192.0.0.0/24 holds protocol plumbing.
var guardRanges = []addrRange{
	// IPv4.
	{netip.MustParsePrefix("127.0.0.0/8"), classPrivate},      // loopback
	{netip.MustParsePrefix("10.0.0.0/8"), classPrivate},       // RFC 1918
	{netip.MustParsePrefix("172.16.0.0/12"), classPrivate},    // RFC 1918
	{netip.MustParsePrefix("192.168.0.0/16"), classPrivate},   // RFC 1918
	{netip.MustParsePrefix("169.254.0.0/16"), classPrivate},   // link-local (metadata is checked first)
	{netip.MustParsePrefix("100.64.0.0/10"), classPrivate},    // CGNAT shared space (RFC 6598), also Tailscale
	{netip.MustParsePrefix("0.0.0.0/8"), classReserved},       // "this network"; 0.0.0.0 dials localhost
	{netip.MustParsePrefix("192.0.0.0/24"), classReserved},    // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), classReserved},    // documentation TEST-NET-1
	{netip.MustParsePrefix("198.51.100.0/24"), classReserved}, // documentation TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), classReserved},  // documentation TEST-NET-3
	{netip.MustParsePrefix("198.18.0.0/15"), classReserved},   // benchmarking
	{netip.MustParsePrefix("224.0.0.0/4"), classReserved},     // multicast
	{netip.MustParsePrefix("240.0.0.0/4"), classReserved},     // reserved, incl. broadcast 255.255.255.255

	// IPv6. IPv4-mapped, IPv4-compatible, NAT64 and 6to4 are handled in
	// classify6, which checks the IPv4 address they embed.
	{netip.MustParsePrefix("::1/128"), classPrivate},        // loopback
	{netip.MustParsePrefix("fe80::/10"), classPrivate},      // link-local
	{netip.MustParsePrefix("fc00::/7"), classPrivate},       // unique local (metadata is checked first)
	{netip.MustParsePrefix("::/128"), classReserved},        // unspecified; dials localhost like 0.0.0.0
	{netip.MustParsePrefix("ff00::/8"), classReserved},      // multicast
	{netip.MustParsePrefix("fec0::/10"), classReserved},     // site-local, deprecated (RFC 3879)
	{netip.MustParsePrefix("100::/64"), classReserved},      // discard-only (RFC 6666)
	{netip.MustParsePrefix("2001::/32"), classReserved},     // Teredo: tunnels to an obfuscated IPv4
	{netip.MustParsePrefix("2001:2::/48"), classReserved},   // benchmarking
	{netip.MustParsePrefix("2001:db8::/32"), classReserved}, // documentation
	{netip.MustParsePrefix("3fff::/20"), classReserved},     // documentation (RFC 9637)
}

var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // ::a.b.c.d, deprecated (RFC 4291 §2.5.5.1)
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // ::ffff:0:a.b.c.d, SIIT (RFC 2765)
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052
	nat64LocalUse  = netip.MustParsePrefix("64:ff9b:1::/48")  // RFC 8215
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056
	globalUnicast  = netip.MustParsePrefix("2000::/3")        // the only IPv6 space allocated for unicast
)

func classifyAddr(ip netip.Addr) addrClass {
	if !ip.IsValid() || ip.Zone() != "" {
		// A zone pins the dial to a local interface, which no allowlist entry
		// can express.
		return classReserved
	}
	ip = ip.Unmap() // ::ffff:a.b.c.d is a.b.c.d on the wire
	for _, m := range guardMetadata {
		if ip == m {
			return classMetadata
		}
	}
	for _, r := range guardRanges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if ip.Is4() {
		return classPublic
	}
	return classify6(ip)
}

// classify6 handles IPv6 addresses in no range: the forms that embed an IPv4
// address, and space outside global unicast.
func classify6(ip netip.Addr) addrClass {
	b := ip.As16()
	v4 := func(i, j, k, l int) addrClass {
		return classifyAddr(netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}))
	}
	switch {
	case ipv4Compatible.Contains(ip), ipv4Translated.Contains(ip):
		// Deprecated or translator-only forms: never a server's address.
		// The embedded IPv4 still decides when it is worse (metadata).
		return max(classReserved, v4(12, 13, 14, 15))
	case nat64WellKnown.Contains(ip):
		// A NAT64 gateway reaches any IPv4 address, so the prefix as a whole
		// needs --allow-private; the embedded address must pass as well.
		return max(classPrivate, v4(12, 13, 14, 15))
	case nat64LocalUse.Contains(ip):
		// The operator picks the prefix length, so the IPv4 may sit at any of
		// RFC 6052's offsets. The /96 one (the usual deployment) decides; the
		// others only count when they name a metadata address.
		c := max(classPrivate, v4(12, 13, 14, 15))
		for _, e := range [...]addrClass{
			v4(6, 7, 9, 10),   // /48
			v4(7, 9, 10, 11),  // /56
			v4(9, 10, 11, 12), // /64
		} {
			if e == classMetadata {
				c = classMetadata
			}
		}
		return c
	case sixToFour.Contains(ip):
		// 2002:AABB:CCDD::/48 is routed to the IPv4 address AABBCCDD.
		return v4(2, 3, 4, 5)
	case !globalUnicast.Contains(ip):
		return classReserved
	}
	return classPublic
}
