/* Small helpers several Check suites share. */
#ifndef PAR_TESTUTIL_H
#define PAR_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <string.h>

/* Entries of dir, "." and ".." aside. */
static inline int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

#endif
