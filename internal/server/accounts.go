package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

var (
	errNoToken = errcode.WithHint(errcode.New(errcode.Unauthorized, "missing, expired or revoked session"),
		"run `agentsecrets login`")
	errLogin = errcode.WithHint(errcode.New(errcode.Unauthorized, "wrong email, password or account key"),
		"check the password and the account key (--account-key-file), then run `agentsecrets login` again")
	errReuse = errcode.WithHint(errcode.New(errcode.Unauthorized, "this refresh token was already used, so another copy of it exists: the device is signed out"),
		"run `agentsecrets login`, then `agentsecrets account devices` to check the devices")
)

// limit takes one attempt from the client IP's bucket and, when email is
// set, from the account's; an empty bucket is a rate_limited answer and a
// log line that says which.
func (s *Server) limit(r *http.Request, info *reqInfo, email string) error {
	// Loopback clients share no IP bucket unless asked (Options.LimitLoopback).
	if s.opts.LimitLoopback || !isLoopback(info.ip) {
		if ok, wait := s.byIP.allow("ip:" + info.ip); !ok {
			s.log.Warn("rate limited", slog.String("scope", "ip"), slog.String("route", r.Pattern), slog.String("ip", info.ip))
			return &rateLimitedError{retry: wait, what: "authentication attempts"}
		}
	}
	if email == "" {
		return nil
	}
	if ok, wait := s.byAccount.allow("account:" + email); !ok {
		s.log.Warn("rate limited", slog.String("scope", "account"), slog.String("route", r.Pattern), slog.String("ip", info.ip), slog.String("email", email))
		return &rateLimitedError{retry: wait, what: "authentication attempts"}
	}
	return nil
}

func (s *Server) authFailure(r *http.Request, info *reqInfo, reason, email string) {
	attrs := []slog.Attr{slog.String("reason", reason), slog.String("route", r.Pattern), slog.String("ip", info.ip)}
	if email != "" {
		attrs = append(attrs, slog.String("email", email))
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "auth failure", attrs...)
}

// authenticate resolves the bearer access token to an account and device.
func (s *Server) authenticate(r *http.Request, info *reqInfo) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !tokenShaped(tok, AccessPrefix) {
		s.authFailure(r, info, "missing or malformed token", "")
		return errNoToken
	}
	p, err := s.store.Authenticate(r.Context(), hashToken(tok), s.now())
	if errors.Is(err, errBadToken) {
		s.authFailure(r, info, "unknown, expired or revoked token", "")
		return errNoToken
	}
	if err != nil {
		return err
	}
	info.account, info.device = p.AccountID, p.DeviceID
	if isTokenAccount(p.AccountID) {
		return s.scopeToken(r, info)
	}
	return nil
}

// normEmail lowercases and trims an email; the account's key everywhere.
func normEmail(e string) (string, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	at := strings.IndexByte(e, '@')
	if len(e) > 254 || at < 1 || at == len(e)-1 || strings.ContainsFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) || !utf8.ValidString(e) {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "email is not a valid address"), "use --email you@example.com")
	}
	return e, nil
}

func checkDeviceName(n string) error {
	if n == "" || utf8.RuneCountInString(n) > 64 || !utf8.ValidString(n) || strings.ContainsFunc(n, unicode.IsControl) {
		return errcode.WithHint(errcode.New(errcode.Usage, "device_name must be 1-64 printable characters"), "use --device-name laptop")
	}
	return nil
}

func checkBytes(field string, b []byte, minLen, maxLen int) error {
	if len(b) < minLen || len(b) > maxLen {
		if minLen == maxLen {
			return errcode.Errorf(errcode.Usage, "%s must be %d bytes, not %d", field, minLen, len(b))
		}
		return errcode.Errorf(errcode.Usage, "%s must be %d to %d bytes, not %d", field, minLen, maxLen, len(b))
	}
	return nil
}

// decodeAuth reads the body of an authentication route into v, checks
// and normalises the email it carries, and takes an attempt from the rate
// limits: the common start of prelogin, account creation and login.
func (s *Server) decodeAuth(w http.ResponseWriter, r *http.Request, info *reqInfo, v any, email *string) (string, error) {
	if err := decode(w, r, v); err != nil {
		return "", err
	}
	norm, err := normEmail(*email)
	if err != nil {
		return "", err
	}
	return norm, s.limit(r, info, norm)
}

func (s *Server) prelogin(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.PreloginRequest
	email, err := s.decodeAuth(w, r, info, &req, &req.Email)
	if err != nil {
		return nil, err
	}
	// Both paths do one lookup and no slow work, so their timing matches.
	a, err := s.store.AccountByEmail(r.Context(), email)
	fake := fakeKDF(s.serverKey, email)
	switch {
	case errors.Is(err, errMissing):
		return syncapi.PreloginResponse{KDF: fake}, nil
	case err != nil:
		return nil, err
	}
	return syncapi.PreloginResponse{KDF: a.KDF}, nil
}

// newSession makes a fresh token pair for a device.
func (s *Server) newSession(deviceID string, now time.Time) (syncapi.Session, []tokenRow, error) {
	at, atHash, err := newToken(AccessPrefix)
	if err != nil {
		return syncapi.Session{}, nil, err
	}
	rt, rtHash, err := newToken(RefreshPrefix)
	if err != nil {
		return syncapi.Session{}, nil, err
	}
	ses := syncapi.Session{AccessToken: at, AccessExpiresAt: now.Add(s.opts.AccessTTL).UTC(), RefreshToken: rt,
		RefreshExpiresAt: now.Add(s.opts.RefreshTTL).UTC(), DeviceID: deviceID}
	return ses, []tokenRow{{Hash: atHash, Kind: kindAccess, ExpiresAt: ses.AccessExpiresAt}, {Hash: rtHash, Kind: kindRefresh, ExpiresAt: ses.RefreshExpiresAt}}, nil
}

func (s *Server) newDevice(accountID, name string, now time.Time) (deviceRow, syncapi.Session, []tokenRow, error) {
	id, err := newID()
	if err != nil {
		return deviceRow{}, syncapi.Session{}, nil, err
	}
	ses, toks, err := s.newSession(id, now)
	return deviceRow{ID: id, AccountID: accountID, Name: name, CreatedAt: now, LastSeenAt: now}, ses, toks, err
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.CreateAccountRequest
	email, err := s.decodeAuth(w, r, info, &req, &req.Email)
	if err != nil {
		return nil, err
	}
	if err := req.KDF.Validate(); err != nil {
		return nil, errcode.Errorf(errcode.Usage, "kdf: %v", err)
	}
	for _, c := range []error{
		checkBytes("kdf.salt", req.KDF.Salt, 16, 64),
		checkBytes("auth_key", req.AuthKey, authKeySize, authKeySize),
		checkBytes("public_keys.seal", req.PublicKeys.Seal, 32, 32),
		checkBytes("public_keys.sign", req.PublicKeys.Sign, 32, 32),
		checkBytes("wrapped_private_keys", req.WrappedPrivateKeys, 1, 4096),
		checkDeviceName(req.DeviceName),
	} {
		if c != nil {
			return nil, c
		}
	}
	now := s.now()
	id, err := newID()
	if err != nil {
		return nil, err
	}
	salt, err := crypto.Random(16)
	if err != nil {
		return nil, err
	}
	a := accountRow{ID: id, Email: email, KDF: req.KDF, AuthSalt: salt, AuthHash: s.hasher.hash(req.AuthKey, salt),
		PublicKeys: req.PublicKeys, Wrapped: req.WrappedPrivateKeys, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	dev, ses, toks, err := s.newDevice(id, req.DeviceName, now)
	if err != nil {
		return nil, err
	}
	switch err := s.store.CreateAccount(r.Context(), a, dev, toks, s.opts.Signup == "closed"); {
	case errors.Is(err, errSignupClosed):
		return nil, errcode.WithHint(errcode.New(errcode.Denied, "signup is closed on this server"), "ask its operator to create your account or run it with --signup open")
	case errors.Is(err, errExists):
		return nil, errcode.WithHint(errcode.New(errcode.Conflict, "an account with this email exists"), "run `agentsecrets login --server URL --email EMAIL`")
	case err != nil:
		return nil, err
	}
	info.account, info.device = a.ID, dev.ID
	return syncapi.SessionResponse{Session: ses, Account: a.api()}, nil
}

// dummySalt stands in for the salt of an email with no account, so a
// failed login costs one Argon2id either way.
var dummySalt = make([]byte, 16)

func (s *Server) login(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.LoginRequest
	email, err := s.decodeAuth(w, r, info, &req, &req.Email)
	if err != nil {
		return nil, err
	}
	if err := checkDeviceName(req.DeviceName); err != nil {
		return nil, err
	}
	a, err := s.store.AccountByEmail(r.Context(), email)
	switch {
	case errors.Is(err, errMissing):
		s.hasher.hash(req.AuthKey, dummySalt)
		s.authFailure(r, info, "unknown email", email)
		return nil, errLogin
	case err != nil:
		return nil, err
	}
	if !s.hasher.verify(req.AuthKey, a.AuthSalt, a.AuthHash) {
		s.authFailure(r, info, "wrong auth key", email)
		return nil, errLogin
	}
	now := s.now()
	dev, ses, toks, err := s.newDevice(a.ID, req.DeviceName, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateDevice(r.Context(), dev, toks); err != nil {
		return nil, err
	}
	info.account, info.device = a.ID, dev.ID
	return syncapi.SessionResponse{Session: ses, Account: a.api()}, nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.RefreshRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := s.limit(r, info, ""); err != nil {
		return nil, err
	}
	if !tokenShaped(req.RefreshToken, RefreshPrefix) {
		s.authFailure(r, info, "malformed refresh token", "")
		return nil, errNoToken
	}
	now := s.now()
	// The new pair is made before the device is known; its id is filled
	// in below and the store writes the rows under the token's device.
	ses, toks, err := s.newSession("", now)
	if err != nil {
		return nil, err
	}
	p, err := s.store.Refresh(r.Context(), hashToken(req.RefreshToken), now, toks)
	switch {
	case errors.Is(err, errTokenReuse):
		info.account, info.device = p.AccountID, p.DeviceID
		s.authFailure(r, info, "rotated refresh token reused; device revoked", "")
		return nil, errReuse
	case errors.Is(err, errBadToken):
		s.authFailure(r, info, "unknown, expired or revoked refresh token", "")
		return nil, errNoToken
	case err != nil:
		return nil, err
	}
	info.account, info.device = p.AccountID, p.DeviceID
	ses.DeviceID = p.DeviceID
	a, err := s.store.AccountByID(r.Context(), p.AccountID)
	if err != nil {
		return nil, err
	}
	return syncapi.SessionResponse{Session: ses, Account: a.api()}, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	return nil, s.store.EndDevice(r.Context(), info.account, info.device, s.now())
}

func (s *Server) account(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	a, err := s.store.AccountByID(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	out := a.api()
	if info.token != nil {
		// A token's accounts row holds no email: it is named as its
		// membership lists it.
		out.Email = tokenEmailPrefix + info.token.Name
	}
	return out, nil
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	rows, err := s.store.Devices(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	out := syncapi.DeviceList{Devices: []syncapi.Device{}}
	for _, d := range rows {
		out.Devices = append(out.Devices, syncapi.Device{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt,
			RevokedAt: d.RevokedAt, Current: d.ID == info.device})
	}
	return out, nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	id := r.PathValue("id")
	err := s.store.EndDevice(r.Context(), info.account, id, s.now())
	if errors.Is(err, errMissing) {
		return nil, errcode.WithHint(errcode.New(errcode.NotFound, "no such device on this account"), "run `agentsecrets account devices` to list them")
	}
	return nil, err
}
