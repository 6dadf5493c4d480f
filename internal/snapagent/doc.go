// Package snapagent is the live-capture agent: it serves the agentapi
// protocol for the roots it was started with, on a Linux host.
//
// # What a capture reads, and what it refuses
//
// A requested path must be absolute, free of NUL bytes and ".." elements,
// at most 4096 bytes long, and lie under a configured root both as written
// and after its symlinks are resolved. Symlinks in the requested path are
// resolved by the agent itself, one component at a time, and a link whose
// target leaves the root is refused without looking at the target: nothing
// outside the roots is ever stat'ed, opened or read. /proc, /sys and /dev are
// refused wherever they appear, and so is any directory on a pseudo file
// system (procfs, sysfs, cgroupfs, debugfs, ...) met during the walk.
//
// The walk never follows a symlink. Every directory and file is opened
// relative to its parent's descriptor with O_NOFOLLOW, so a component
// swapped for a symlink mid-walk fails to open rather than leading out of the
// tree. Symlinks, fifos, sockets and device files are skipped and counted in
// CaptureStats.SkippedByKind; they are never opened. Regular files are opened
// with O_NONBLOCK|O_NOCTTY and checked after opening (fstat: still a regular
// file, same device and inode as listed) before a byte is read. A hard link
// inside a root is a file inside the root: the agent cannot tell where else
// its inode is linked.
//
// # Streaming
//
// The capture is written as it is made: the JSON object's fields come in
// agentapi.Capture's order, files in walk order (a directory's entries sorted
// by name, depth first), each file as soon as its digest is known. Memory
// stays constant in the number of files, but for one directory's names. A
// failure after the response has started (the tree exceeds MaxFiles, the
// client went away) cuts the JSON short, so it cannot be decoded, and names
// the reason in the Snapagent-Error trailer.
//
// # Digests and blobs
//
// Files are hashed with SHA-256 as they are read, by a few workers at once.
// The agent remembers each file's digest under (path, device, inode, size,
// mtime, ctime) for up to MaxFiles files, so a re-capture hashes only what
// changed. A file modified within a second before it was hashed is not
// remembered, as its timestamps could not tell a later change in the same
// clock tick apart (git's "racily clean" problem).
//
// GET /v1/blobs/{digest} serves a file a capture listed, found through the
// same memory. The file is opened as carefully as during a walk and hashed as
// it is sent, with Content-Length set to the size it has when opened; the
// last blocks are held back until the whole file has been hashed. A file
// that no longer has the digest gets 409 when nothing has been sent yet
// (files under 512 KiB), and otherwise the connection is cut before the
// body is complete, so a response that ends normally always carries the
// digest's bytes. Clients should still check the digest of what they
// receive.
package snapagent
