/* Filesystem steps that must be done the same careful way everywhere: directories created,
 * files replaced atomically and durably, trees removed without following symlinks. */
#ifndef PAR_FSUTIL_H
#define PAR_FSUTIL_H

#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: missing parents get 0755, the last component leaf_mode. An existing directory is
 * fine; an existing non-directory is ENOTDIR. 0 ok, -1 with errno. */
int fs_mkdir_p(const char *path, mode_t leaf_mode);

/* write(2) until done, retrying EINTR. 0 ok, -1 with errno. */
int fs_write_all(int fd, const void *buf, size_t n);

/* fsync of a directory, so a rename in it survives a crash. 0 ok, -1 with errno. */
int fs_fsync_dir(const char *dir);

/* Replaces path (inside dir) with content: temp file beside it, write, fsync, rename, fsync
 * dir. Nothing but the old or the new file is ever visible. 0 ok, -1 with errno. */
int fs_replace_file(const char *dir, const char *path, const void *content, size_t len,
		    mode_t mode);

/* fdopendir that takes fd in every case: on failure fd is closed (errno kept), so callers
 * need no cleanup branch of their own. */
DIR *fs_fdopendir(int fd);

/* rm -rf without following symlinks (each directory opened O_NOFOLLOW, entries removed
 * relative to it; no chdir). A missing path is fine. 0 ok, -1 with errno. */
int fs_remove_tree(const char *path);
/* The same for the entry name inside the directory dirfd. */
int fs_remove_tree_at(int dirfd, const char *name);

#endif
