package fileperm

import "syscall"

// stRdonly is ST_RDONLY of statfs(2)'s f_flags.
const stRdonly = 0x1

// readOnlyMount reports whether path lies on a file system mounted
// read-only.
func readOnlyMount(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Flags&stRdonly != 0
}
