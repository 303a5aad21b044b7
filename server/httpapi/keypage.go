package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
)

// The key registration page: a contact of an organization follows the link
// of its registration mail (/?q=TOKEN), pastes an armored OpenPGP public
// key, and mail to it is encrypted to that key from then on. The page is
// rendered here, has no external assets and no script, and its CSP allows
// nothing else.

// maxKeyForm bounds the form a contact posts.
const maxKeyForm = 64 << 10

const pageStyle = `body{font-family:sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
textarea{width:100%;font-family:monospace}pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;padding:.5rem}
.error{color:#a00}.ok{color:#060}`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}()

var keyPage = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — Key Trustee Server</title>
<style>{{.Style}}</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert" id="error">{{.Error}}</p>{{end}}
{{if .Registered}}<p class="ok" role="status" id="registered">Registered key <strong id="fingerprint">{{.Registered}}</strong> for {{.Contact}} of the organization {{.Org}}. Mail from this server to you is encrypted to it from now on.</p>{{end}}
{{if .Form}}
<p>You are an administrator contact of the organization <strong>{{.Org}}</strong> as <strong>{{.Contact}}</strong>. Paste your OpenPGP public key, the whole block from <code>-----BEGIN PGP PUBLIC KEY BLOCK-----</code> to <code>-----END PGP PUBLIC KEY BLOCK-----</code> (<code>gpg --armor --export you@example.com</code>). Mail to you is then encrypted to it. This link works once, until {{.Expires}}.</p>
<form method="post" action="/">
<input type="hidden" name="q" value="{{.Token}}">
<p><label for="key">Your OpenPGP public key</label></p>
<p><textarea id="key" name="key" rows="16" required spellcheck="false" autocomplete="off"></textarea></p>
<p><button type="submit" id="submit">Register the key</button></p>
</form>
{{end}}
{{if .Help}}<p id="help">{{.Help}}</p>{{end}}
<h2>This server's public key</h2>
<p>Mail from this server is signed with the key <strong id="server-key-id">{{.ServerKeyID}}</strong>. Import it to check that the mail comes from this server: save the block below and run <code>gpg --import</code>, or <code>gpg --keyserver hkp://THIS-HOST:11371 --recv-keys {{.ServerFingerprint}}</code>.</p>
<pre id="server-key">{{.ServerKey}}</pre>
</main>
</body>
</html>
`))

type keyPageData struct {
	Title, Error, Help                       string
	Form                                     bool
	Org, Contact, Expires, Token, Registered string
	ServerKeyID, ServerFingerprint           string
	ServerKey                                string
	Style                                    template.CSS
}

func (s *Server) renderKeyPage(w http.ResponseWriter, status int, d keyPageData) {
	d.ServerKeyID, d.ServerFingerprint, d.ServerKey = s.opts.ServerKey.ID(), s.opts.ServerKey.Fingerprint(), string(s.opts.ServerKey.Armor())
	d.Style = template.CSS(pageStyle)
	var buf bytes.Buffer
	if err := keyPage.Execute(&buf, d); err != nil {
		s.log.Error("rendering the key registration page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer") // the link's secret is in the URL
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// unusableLink renders the page for a link that cannot be used.
func (s *Server) unusableLink(w http.ResponseWriter, err error) {
	msg := strings.TrimPrefix(err.Error(), store.ErrLinkUnusable.Error()+": ")
	status := http.StatusGone
	if strings.Contains(msg, "not known") {
		status = http.StatusNotFound
	}
	s.renderKeyPage(w, status, keyPageData{Title: "This link cannot be used", Error: strings.ToUpper(msg[:1]) + msg[1:] + ".",
		Help: "Links in registration mail work once, within 12 hours. Ask an administrator of the key trustee server for a new one: adding you to the organization again (keytrustee-orgtool add -n ORGANIZATION -c YOUR-ADDRESS) sends a new link."})
}

// handleKeyPage shows the registration form of a link.
func (s *Server) handleKeyPage(w http.ResponseWriter, r *http.Request, token string) {
	l, err := s.opts.Store.LookupContactLink(r.Context(), token)
	if errors.Is(err, store.ErrLinkUnusable) {
		s.unusableLink(w, err)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.renderKeyPage(w, http.StatusOK, keyPageData{Title: "Register your OpenPGP key", Form: true, Org: l.OrgName, Contact: l.Contact,
		Expires: l.Expires.UTC().Format("Mon Jan _2 15:04 2006 MST"), Token: token})
}

// handleKeyRegistration takes the key posted by the form.
func (s *Server) handleKeyRegistration(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxKeyForm)
	if err := r.ParseForm(); err != nil {
		s.renderKeyPage(w, http.StatusBadRequest, keyPageData{Title: "Key not registered", Error: "The form could not be read (a key is at most 64 KiB)."})
		return
	}
	token, text := r.PostForm.Get("q"), strings.TrimSpace(r.PostForm.Get("key"))
	// Who holds the link: its secret stands for the contact it was sent to.
	actor := audit.Actor{ID: "contact-link", Source: sourceAddr(r)}
	refused := func(object, reason string) bool {
		if err := s.record(r, audit.Event{Actor: actor.ID, Action: audit.ActionContactKey, Object: object,
			Outcome: audit.OutcomeRefused, Details: map[string]any{"reason": reason}}); err != nil {
			s.writeError(w, r, err)
			return false
		}
		return true
	}
	l, err := s.opts.Store.LookupContactLink(r.Context(), token)
	if errors.Is(err, store.ErrLinkUnusable) {
		if refused("contact:", "link_unusable") {
			s.unusableLink(w, err)
		}
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	again := func(status int, msg string) {
		s.renderKeyPage(w, status, keyPageData{Title: "Register your OpenPGP key", Form: true, Error: msg, Org: l.OrgName, Contact: l.Contact,
			Expires: l.Expires.UTC().Format("Mon Jan _2 15:04 2006 MST"), Token: token})
	}
	object := "contact:" + l.OrgName + "/" + l.Contact
	key, msg := checkContactKey(text, s.opts.ServerKey)
	if msg != "" {
		if refused(object, "key_refused") {
			again(http.StatusBadRequest, msg)
		}
		return
	}
	if _, err := s.opts.Store.RegisterContactKey(audit.WithActor(r.Context(), actor), token, key.Fingerprint(), key.Armor()); err != nil {
		if errors.Is(err, store.ErrLinkUnusable) {
			if refused(object, "link_unusable") {
				s.unusableLink(w, err)
			}
			return
		}
		s.writeError(w, r, err)
		return
	}
	s.log.Info("contact key registered", "org", l.OrgName, "contact", l.Contact, "fingerprint", key.Fingerprint())
	s.renderKeyPage(w, http.StatusOK, keyPageData{Title: "Key registered", Org: l.OrgName, Contact: l.Contact, Registered: key.ID()})
}

// checkContactKey parses a pasted key; msg says what is wrong with it. A
// private key is refused without being kept or logged.
func checkContactKey(text string, serverKey *openpgp.PublicKey) (*openpgp.PublicKey, string) {
	switch {
	case text == "":
		return nil, "Paste your public key into the box."
	case strings.Contains(text, "PRIVATE KEY BLOCK"):
		return nil, "This is a private key: never paste it anywhere. It was not stored. Paste the public key (gpg --armor --export you@example.com)."
	case !strings.HasPrefix(text, "-----BEGIN PGP PUBLIC KEY BLOCK-----") || !strings.HasSuffix(text, "-----END PGP PUBLIC KEY BLOCK-----"):
		return nil, "Paste the whole block, from -----BEGIN PGP PUBLIC KEY BLOCK----- to -----END PGP PUBLIC KEY BLOCK-----."
	}
	key, err := openpgp.ParsePublic([]byte(text))
	if err != nil {
		if errors.Is(err, openpgp.ErrPrivateKey) {
			return nil, "This is a private key: never paste it anywhere. It was not stored."
		}
		return nil, "The key was not accepted: " + err.Error()
	}
	if key.Fingerprint() == serverKey.Fingerprint() {
		return nil, "This is the server's own key; paste yours."
	}
	if err := openpgp.CanEncryptTo(key); err != nil {
		return nil, "Mail cannot be encrypted to this key: " + err.Error() + " (add an encryption subkey: gpg --quick-add-key FINGERPRINT default encr)."
	}
	return key, ""
}
