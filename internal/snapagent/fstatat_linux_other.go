//go:build linux && !amd64

package snapagent

import "syscall"

// oPath is O_PATH, the same on every architecture this builds for.
const oPath = 0x200000

// fstatat stats name in the directory dirfd without following a symlink:
// an O_PATH descriptor neither reads nor opens the file for real, so it has
// no effect even on a device or a fifo.
func fstatat(dirfd int, name string, st *syscall.Stat_t) error {
	fd, err := openat(dirfd, name, oPath|syscall.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Fstat(fd, st)
}
