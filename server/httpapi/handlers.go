package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/hkp"
	"trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/wire/clientv1"
)

// handleLookup answers the HKP lookups GnuPG's dirmngr sends: op=get (what
// --recv-keys sends) for the server's key and for registered clients' keys,
// by full fingerprint; op=index (what --search-keys sends) in the
// machine-readable format. An index finds a client's key only by its full
// fingerprint, as a get does, so that clients cannot be enumerated; the
// server's own key is found by fingerprint, key ID or user ID text too.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op := q.Get("op")
	if op != hkp.OpGet && op != hkp.OpIndex {
		s.writeError(w, r, newError(http.StatusNotImplemented, "unsupported_op", "only op=get and op=index are supported on /pks/lookup"))
		return
	}
	search, err := hkp.ParseSearch(q.Get("search"))
	if err == nil && op == hkp.OpGet && search.Fingerprint == "" {
		err = errors.New("op=get needs a full 40-digit fingerprint, e.g. search=0x4EDC46882386C827E20DEEA2D850ACA33BEDB0D1")
	}
	if err != nil {
		s.writeError(w, r, newError(http.StatusBadRequest, "invalid_search", err.Error()))
		return
	}
	var armored []byte
	var key *openpgp.PublicKey
	switch {
	case search.Fingerprint == s.opts.ServerKey.Fingerprint() || (op == hkp.OpIndex && search.Matches(s.opts.ServerKey.Summary(s.now()))):
		armored, key = s.opts.ServerKey.Armor(), s.opts.ServerKey
	case search.Fingerprint != "":
		c, err := s.opts.Store.Client(r.Context(), search.Fingerprint)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		armored = c.PublicKey
	default:
		s.writeError(w, r, newError(http.StatusNotFound, "not_found", "no key matches this search; ask by full fingerprint"))
		return
	}
	if op == hkp.OpGet {
		w.Header().Set("Content-Type", "application/pgp-keys")
		w.Header().Set("Content-Length", strconv.Itoa(len(armored)))
		w.Write(armored)
		return
	}
	if key == nil {
		if key, err = openpgp.ParseStored(armored); err != nil {
			s.writeError(w, r, fmt.Errorf("index of a stored client key: %v", err)) // the server's failure, not the request's
			return
		}
	}
	index := hkp.Index([]openpgp.Summary{key.Summary(s.now())})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(index)))
	w.Write(index)
}

// maxRegisterBody bounds a registration body: a public key and two short strings.
const maxRegisterBody = 128 << 10

// handleRegister registers a client key with an organization. The request
// is signed by the key being registered, which proves the caller holds it.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	// A refused registration is recorded in the journal, under the
	// fingerprint of the key sent once it is known; an accepted one by the
	// store, with the client.
	claimed, orgName := "", ""
	refuse := func(err error) {
		if !errors.Is(err, audit.ErrUnavailable) {
			details := map[string]any{"reason": classify(err).code}
			if orgName != "" {
				details["org"] = orgName
			}
			object := "client:"
			if claimed != "" {
				object = store.ClientObject(claimed)
			}
			if rerr := s.record(r, audit.Event{Actor: audit.UnverifiedActor(claimed), Action: audit.ActionClientRegister,
				Object: object, Outcome: audit.OutcomeRefused, Details: details}); rerr != nil {
				err = rerr
			}
		}
		s.writeError(w, r, err)
	}
	body, digest, err := s.readBody(w, r, maxRegisterBody, "registration")
	if err != nil {
		refuse(err)
		return
	}
	var req clientv1.RegisterRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		refuse(newError(http.StatusBadRequest, "invalid_json", "the body must be one JSON object {\"org\": ..., \"auth_code\": ..., \"public_key\": ...}: "+err.Error()))
		return
	}
	if err := validateRegistration(req); err != nil {
		refuse(err)
		return
	}
	orgName = req.Org
	source := sourceAddr(r)
	if ok, retry := s.limiter.allow(req.Org + "\x00" + source); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+1)))
		refuse(newError(http.StatusTooManyRequests, "rate_limited", "too many registration attempts for this organization from your address; retry later"))
		return
	}
	if req.PublicKey == "" {
		refuse(newError(http.StatusBadRequest, "invalid_key", "public_key is empty; send your armored public key (gpg --armor --export FPR)"))
		return
	}
	key, err := openpgp.ParsePublic([]byte(req.PublicKey))
	if err != nil {
		refuse(err)
		return
	}
	claimed = key.Fingerprint()
	header, err := auth.OneHeader(r.Header.Values("Authorization"))
	if err != nil {
		refuse(err)
		return
	}
	if _, err := s.auth.VerifyWithKey(r.Context(), auth.Request{
		Method: r.Method, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Authorization: header, BodySHA256: digest,
	}, key); err != nil {
		refuse(err)
		return
	}
	o, err := s.opts.Store.Organization(r.Context(), req.Org)
	if errors.Is(err, store.ErrNotFound) {
		refuse(newError(http.StatusNotFound, "unknown_org", "organization "+strconv.Quote(req.Org)+" does not exist; check the name with your Key Trustee administrator"))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.now().Before(o.Expiration) {
		refuse(fmt.Errorf("%w: on %s; no new client can register", auth.ErrOrgExpired, o.Expiration.UTC().Format(time.RFC3339)))
		return
	}
	state, msg := store.StatePending, "registered; an administrator of the organization must enable this client before it can use deposits"
	matches, err := s.opts.CodeChecker.Matches(r.Context(), o.AuthHash, req.AuthCode)
	if errors.Is(err, org.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		refuse(err)
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	if matches {
		state, msg = store.StateActive, "registered and active"
	}
	c := store.Client{
		Fingerprint: key.Fingerprint(), OrgName: o.Name, KeyID: key.ID(),
		PublicKey: key.Armor(), State: state, SourceAddr: source,
	}
	if err := s.opts.Store.RegisterClient(asClient(r, c.Fingerprint), c); err != nil {
		if errors.Is(err, store.ErrExists) {
			refuse(err)
			return
		}
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "client registered", "fingerprint", c.Fingerprint, "org", o.Name, "state", string(state), "source", source)
	for _, contact := range o.Contacts {
		text := mail.ClientRegistrationText(mail.ClientRegistration{Org: o.Name, Fingerprint: c.Fingerprint, KeyID: c.KeyID,
			Hostname: cleanHostname(req.Hostname), Source: source, Active: state == store.StateActive})
		if err := s.opts.Store.QueueMail(r.Context(), contact, mail.ClientRegistrationSubject, text); err != nil {
			s.log.ErrorContext(r.Context(), "queueing the client registration mail", "contact", contact, "err", err)
		}
	}
	writeJSON(w, http.StatusCreated, clientv1.Registration{
		Fingerprint: c.Fingerprint, KeyID: c.KeyID, Org: o.Name, State: string(state),
		ServerFingerprint: s.opts.ServerKey.ID(), Message: msg,
	})
}

// MaxHostnameLen is the longest host name a registration may give (a DNS
// name's limit).
const MaxHostnameLen = 253

// validateRegistration checks the fields of a registration before anything
// is looked up or hashed: the organization's name, an auth code no longer
// than an administrator can set, and a host name of at most MaxHostnameLen
// letters, digits, dots, hyphens and underscores (it is quoted in mail).
// The public key is bounded by the body's limit and checked when parsed.
func validateRegistration(req clientv1.RegisterRequest) error {
	if err := org.ValidateName(req.Org); err != nil {
		return err
	}
	if len(req.AuthCode) > org.MaxAuthCodeLen {
		return newError(http.StatusBadRequest, "invalid_input", fmt.Sprintf("auth_code is %d bytes, at most %d are allowed; send the code your administrator gave you", len(req.AuthCode), org.MaxAuthCodeLen))
	}
	if len(req.Hostname) > MaxHostnameLen {
		return newError(http.StatusBadRequest, "invalid_input", fmt.Sprintf("hostname is %d bytes, at most %d are allowed; send the host's name (hostname -f) or leave it out", len(req.Hostname), MaxHostnameLen))
	}
	for i := 0; i < len(req.Hostname); i++ {
		if c := req.Hostname[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return newError(http.StatusBadRequest, "invalid_input", "hostname may hold only letters, digits, dots, hyphens and underscores; send the host's name (hostname -f) or leave it out")
		}
	}
	return nil
}

// cleanHostname keeps a client's claimed host name printable and short: it
// is quoted in mail, not trusted.
func cleanHostname(h string) string {
	h = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, h)
	if len(h) > 253 {
		h = h[:253]
	}
	if h == "" {
		return "(not given)"
	}
	return h
}

func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// handleSession trades one signed request for a short-lived session token.
func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	_, digest, err := s.readBody(w, r, 4<<10, "session request")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := s.authenticate(r, digest)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if id.Scheme != auth.SchemeSignature {
		s.writeError(w, r, newError(http.StatusUnauthorized, "signature_required", "a session is opened only by a signed request (KTS-PGP), not with another session token"))
		return
	}
	token, expires, err := s.opts.Tokens.Issue(id.Fingerprint, s.opts.SessionTTL, s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.record(r, audit.Event{Actor: audit.ClientActor(id.Fingerprint), Action: audit.ActionSessionOpen,
		Object: store.ClientObject(id.Fingerprint), Outcome: audit.OutcomeOK,
		Details: map[string]any{"expires": expires.UTC().Format(time.RFC3339)}}); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, clientv1.Session{Token: token, ExpiresAt: expires.UTC()})
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	body, digest, err := s.readBody(w, r, s.opts.Deposits.MaxBytes, "deposit")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := s.authenticate(r, digest)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	created, err := s.opts.Deposits.Put(asClient(r, id.Fingerprint), id.Fingerprint, name, body)
	if err != nil {
		s.writeError(w, r, s.recordRefusal(r, id.Fingerprint, audit.ActionDepositCreate, store.DepositObject(id.Fingerprint, name), err))
		return
	}
	w.Header().Set("Location", "/v1/deposits/"+name)
	out, _ := json.Marshal(clientv1.Deposit{Name: name, Size: len(body), Created: created.UTC()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(append(out, '\n'))
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticateNoBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	data, err := s.opts.Deposits.Get(r.Context(), id.Fingerprint, name)
	// The read is recorded, whatever its outcome, before anything is sent.
	if rerr := s.record(r, audit.Event{Actor: audit.ClientActor(id.Fingerprint), Action: audit.ActionDepositRead,
		Object: store.DepositObject(id.Fingerprint, name), Outcome: outcome(err)}); rerr != nil {
		s.writeError(w, r, rerr)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(data)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticateNoBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := r.PathValue("name")
	if err := s.opts.Deposits.Delete(asClient(r, id.Fingerprint), id.Fingerprint, name); err != nil {
		s.writeError(w, r, s.recordRefusal(r, id.Fingerprint, audit.ActionDepositDelete, store.DepositObject(id.Fingerprint, name), err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticateNoBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.opts.Deposits.List(r.Context(), id.Fingerprint)
	if rerr := s.record(r, audit.Event{Actor: audit.ClientActor(id.Fingerprint), Action: audit.ActionDepositList,
		Object: "deposits:" + id.Fingerprint, Outcome: outcome(err), Details: map[string]any{"count": len(list)}}); rerr != nil {
		s.writeError(w, r, rerr)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]clientv1.Deposit, len(list))
	for i, d := range list {
		out[i] = clientv1.Deposit{Name: d.Name, Size: d.Size, Created: d.Created.UTC()}
	}
	writeJSON(w, http.StatusOK, clientv1.DepositList{Deposits: out})
}

// emptyDigest is the SHA-256 of no body.
var emptyDigest = sha256.Sum256(nil)

// authenticateNoBody authenticates a request that must not carry a body.
func (s *Server) authenticateNoBody(w http.ResponseWriter, r *http.Request) (auth.Identity, error) {
	if r.ContentLength == 0 {
		return s.authenticate(r, emptyDigest)
	}
	_, digest, err := s.readBody(w, r, 0, "request")
	if err != nil {
		return auth.Identity{}, s.recordAuthFailure(r, newError(http.StatusBadRequest, "unexpected_body", "this request takes no body"))
	}
	return s.authenticate(r, digest)
}
