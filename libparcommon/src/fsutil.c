/* The careful filesystem steps shared by the backoff counter, the package cache and the
 * extractor: durable atomic replacement and symlink-proof tree removal. */
#include "par/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, mode_t leaf_mode)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	int rc = -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			goto out;
		*s = '/';
	}
	if (mkdir(p, leaf_mode) != 0 && errno != EEXIST)
		goto out;
	struct stat st;
	if (stat(p, &st) != 0)
		goto out;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto out;
	}
	rc = 0;
out:
	free(p);
	return rc;
}

int fs_write_all(int fd, const void *buf, size_t n)
{
	const char *s = buf;
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

int fs_replace_file(const char *dir, const char *path, const void *content, size_t len,
		    mode_t mode)
{
	size_t n = strlen(path) + sizeof ".tmpXXXXXX";
	char *tmp = malloc(n);
	if (!tmp)
		return -1;
	snprintf(tmp, n, "%s.tmpXXXXXX", path);
	int rc = -1;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		goto out;
	int ok = fchmod(fd, mode) == 0 && fs_write_all(fd, content, len) == 0 && fsync(fd) == 0;
	int e = errno;
	if (close(fd) != 0 && ok) {
		ok = 0;
		e = errno;
	}
	if (!ok || rename(tmp, path) != 0) {
		if (ok)
			e = errno;
		unlink(tmp);
		errno = e;
		goto out;
	}
	rc = fs_fsync_dir(dir);
out:
	free(tmp);
	return rc;
}

DIR *fs_fdopendir(int fd)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

/* Empties the directory fd (which it closes). */
static int remove_contents(int fd)
{
	DIR *d = fs_fdopendir(fd);
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fs_remove_tree_at(dirfd(d), de->d_name) != 0)
			rc = -1;
	}
	int e = errno;
	closedir(d);
	errno = e;
	return rc;
}

int fs_remove_tree_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	/* A directory: O_NOFOLLOW|O_DIRECTORY refuses a symlink swapped in meanwhile. */
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (remove_contents(fd) != 0)
		return -1;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

int fs_remove_tree(const char *path)
{
	return fs_remove_tree_at(AT_FDCWD, path);
}
