package hsmkeys

import (
	"strconv"
	"strings"

	"trustee.dev/trustee/server/store"
)

// KEKLabelPrefix names the deposit key versions in the token: kts-kek-1,
// kts-kek-2, ...
const KEKLabelPrefix = "kts-kek-"

// KEKVersion is the version number of a deposit key label (kts-kek-N).
func KEKVersion(label string) (int, bool) {
	s, ok := strings.CutPrefix(label, KEKLabelPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || strconv.Itoa(v) != s {
		return 0, false
	}
	return v, true
}

// Versions is what the database's key versions say about the HSM's keys,
// read in one pass: kts keyhsm rotate plans from it and kts keyhsm check
// lists the keys it examines from it.
type Versions struct {
	// Current is the ID of the key that wraps new deposits ("" when none
	// is recorded); it may be a file keyring's.
	Current string
	// Retiring is true when an older version still wraps deposits: a
	// rotation is unfinished.
	Retiring bool
	// Next is the first version after every HSM key version the database
	// knows of, recorded or wrapping some deposit.
	Next int
	// Keys are the HSM keys the versions record or some deposit uses, in
	// the database's order, retired ones too: backups made before a
	// rotation need them.
	Keys []CheckedKey
}

// ScanVersions reads the key versions (and the keys deposits name) once.
func ScanVersions(keks []store.KEK) Versions {
	var v Versions
	last := 0
	for _, k := range keks {
		switch k.State {
		case store.KEKCurrent:
			v.Current = k.ID
		case store.KEKRetiring:
			v.Retiring = true
		}
		label, ok := Label(k.ID)
		if !ok {
			continue
		}
		if n, ok := KEKVersion(label); ok && n > last {
			last = n
		}
		use := k.State
		switch use {
		case store.KEKRetired:
			use = "retired: older backups need it"
		case "":
			use = "wraps deposits"
		}
		v.Keys = append(v.Keys, CheckedKey{Label: label, Use: use})
	}
	v.Next = last + 1
	return v
}
