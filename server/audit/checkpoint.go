package audit

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"trustee.dev/trustee/server/openpgp"
)

// Signer signs checkpoints: the server's OpenPGP key.
type Signer interface {
	SignDetached(msg []byte) ([]byte, error)
	Public() *openpgp.PublicKey
}

// CheckpointMessage is what a checkpoint's signature covers: the line
// "kts-audit-checkpoint-v1", the signed record's sequence number and its
// hash in lower-case hex, joined by "\n".
func CheckpointMessage(h Head) []byte {
	return []byte("kts-audit-checkpoint-v1\n" + strconv.FormatInt(h.Seq, 10) + "\n" + h.Hash.String())
}

// checkpointDetails are the details of a checkpoint record.
type checkpointDetails struct {
	SignedSeq  int64  `json:"signed_seq"`
	SignedHash string `json:"signed_hash"`
	Key        string `json:"key"`       // the signing key's fingerprint
	Signature  string `json:"signature"` // base64 of a binary detached OpenPGP signature
}

// NewCheckpoint signs head and returns the checkpoint event to append
// after it (possibly after other records appended meanwhile).
func NewCheckpoint(key Signer, head Head) (Event, error) {
	sig, err := key.SignDetached(CheckpointMessage(head))
	if err != nil {
		return Event{}, fmt.Errorf("sign the audit chain's head: %w", err)
	}
	return Event{
		Actor: ActorServer, Action: ActionCheckpoint, Object: "seq:" + strconv.FormatInt(head.Seq, 10), Outcome: OutcomeOK,
		Details: map[string]any{
			"signed_seq": head.Seq, "signed_hash": head.Hash.String(),
			"key": key.Public().Fingerprint(), "signature": base64.StdEncoding.EncodeToString(sig),
		},
	}, nil
}

// IsCheckpoint reports whether r is a checkpoint record.
func (r *Record) IsCheckpoint() bool { return r.Action == ActionCheckpoint }

// SignedHead is the head a checkpoint record signs, as it claims.
func (r *Record) SignedHead() (Head, error) {
	d, err := r.checkpoint()
	if err != nil {
		return Head{}, err
	}
	h, err := ParseHash(d.SignedHash)
	return Head{Seq: d.SignedSeq, Hash: h}, err
}

func (r *Record) checkpoint() (checkpointDetails, error) {
	var d checkpointDetails
	if err := json.Unmarshal([]byte(r.Details), &d); err != nil {
		return d, fmt.Errorf("its details are not a checkpoint's: %w", err)
	}
	if d.SignedSeq < 1 || d.SignedHash == "" || d.Key == "" || d.Signature == "" {
		return d, errors.New("its details lack signed_seq, signed_hash, key or signature")
	}
	return d, nil
}

// checkSignature checks a checkpoint record's signature with key.
func (r *Record) checkSignature(key *openpgp.PublicKey) (Head, error) {
	d, err := r.checkpoint()
	if err != nil {
		return Head{}, err
	}
	h, err := ParseHash(d.SignedHash)
	if err != nil {
		return Head{}, fmt.Errorf("signed_hash: %w", err)
	}
	head := Head{Seq: d.SignedSeq, Hash: h}
	if d.Key != key.Fingerprint() {
		return head, fmt.Errorf("it is signed by key %s, not by the server's key %s", d.Key, key.Fingerprint())
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature)
	if err != nil {
		return head, fmt.Errorf("its signature is not base64: %w", err)
	}
	if err := key.VerifyDetached(CheckpointMessage(head), sig); err != nil {
		return head, fmt.Errorf("bad signature: %w", err)
	}
	return head, nil
}
