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
	"time"

	"trustee.dev/trustee/server/apierror"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/hkp"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/registration"
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
		s.writeError(w, r, apierror.New(http.StatusNotImplemented, "unsupported_op", "only op=get and op=index are supported on /pks/lookup"))
		return
	}
	search, err := hkp.ParseSearch(q.Get("search"))
	if err == nil && op == hkp.OpGet && search.Fingerprint == "" {
		err = errors.New("op=get needs a full 40-digit fingerprint, e.g. search=0x4EDC46882386C827E20DEEA2D850ACA33BEDB0D1")
	}
	if err != nil {
		s.writeError(w, r, apierror.New(http.StatusBadRequest, "invalid_search", err.Error()))
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
		s.writeError(w, r, apierror.New(http.StatusNotFound, "not_found", "no key matches this search; ask by full fingerprint"))
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

// handleRegister registers a client key with an organization: it decodes
// the request, checks its fields and the rate limit, checks that the
// request is signed by the key it registers (which proves the caller holds
// it), calls the registration service (package registration) and renders
// its answer.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	// A refused registration is recorded in the journal, under the
	// fingerprint of the key sent once it is known; an accepted one by the
	// store, with the client.
	claimed, orgName := "", ""
	refuse := func(err error) {
		if !errors.Is(err, audit.ErrUnavailable) {
			details := map[string]any{"reason": classify(err).Code}
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
		refuse(apierror.New(http.StatusBadRequest, "invalid_json", "the body must be one JSON object {\"org\": ..., \"auth_code\": ..., \"public_key\": ...}: "+err.Error()))
		return
	}
	reg := registration.Registration{Org: req.Org, AuthCode: req.AuthCode, Hostname: req.Hostname, Source: sourceAddr(r)}
	if err := reg.Validate(); err != nil {
		refuse(err)
		return
	}
	orgName = req.Org
	if ok, retry := s.limiter.allow(req.Org + "\x00" + reg.Source); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+1)))
		refuse(apierror.New(http.StatusTooManyRequests, "rate_limited", "too many registration attempts for this organization from your address; retry later"))
		return
	}
	if req.PublicKey == "" {
		refuse(apierror.New(http.StatusBadRequest, "invalid_key", "public_key is empty; send your armored public key (gpg --armor --export FPR)"))
		return
	}
	if reg.Key, err = openpgp.ParsePublic([]byte(req.PublicKey)); err != nil {
		refuse(err)
		return
	}
	claimed = reg.Key.Fingerprint()
	if err := s.signedBy(r, digest, reg.Key); err != nil {
		refuse(err)
		return
	}
	res, err := s.registration.Register(asClient(r, claimed), reg)
	var refusal *registration.Refusal
	switch {
	case errors.As(err, &refusal):
		if errors.Is(err, org.ErrBusy) {
			w.Header().Set("Retry-After", "1")
		}
		refuse(err)
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	}
	c := res.Client
	writeJSON(w, http.StatusCreated, clientv1.Registration{
		Fingerprint: c.Fingerprint, KeyID: c.KeyID, Org: c.OrgName, State: string(c.State),
		ServerFingerprint: s.opts.ServerKey.ID(), Message: res.Message,
	})
}

// signedBy checks that the request is signed by key, over its body digest.
func (s *Server) signedBy(r *http.Request, digest [32]byte, key *openpgp.PublicKey) error {
	header, err := auth.OneHeader(r.Header.Values("Authorization"))
	if err != nil {
		return err
	}
	_, err = s.auth.VerifyWithKey(r.Context(), auth.Request{
		Method: r.Method, EscapedPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Authorization: header, BodySHA256: digest,
	}, key)
	return err
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
		s.writeError(w, r, apierror.New(http.StatusUnauthorized, "signature_required", "a session is opened only by a signed request (KTS-PGP), not with another session token"))
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
		return auth.Identity{}, s.recordAuthFailure(r, apierror.New(http.StatusBadRequest, "unexpected_body", "this request takes no body"))
	}
	return s.authenticate(r, digest)
}
