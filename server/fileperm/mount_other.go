//go:build unix && !linux

package fileperm

// readOnlyMount is false where statfs has no portable read-only flag: a
// file's mode and owner alone decide.
func readOnlyMount(string) bool { return false }
