#!/usr/bin/python3
"""Writes the hostile agent packages (and two good ones) that tests/unit/test_archive.c feeds to
arch_extract and arch_validate, plus expected.tsv: file, the arch_error name it must be
rejected with, and the PAR_MAX_EXTRACT_MB the test passes. Generated at test time (a CTest
fixture) rather than checked in: the bombs and the 20,000-entry zip are megabytes of nothing.

Usage: make_hostile_zips.py OUTDIR    (stdlib only; Debian's /usr/bin/python3)
"""
import io
import os
import random
import stat
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib

S_REG = stat.S_IFREG | 0o644
S_DIR = stat.S_IFDIR | 0o755
MIB = 1 << 20
FIXED_TIME = (2024, 1, 1, 0, 0, 0)

# The good archives' contents; tests/unit/test_archive.c checks the same bytes and modes.
AGENT_YAML = b"name: good-agent\nversion: 1.0.0\nentrypoint: agent.main:run\n"
MAIN_PY = b"def run():\n    return 'ok'\n"
RUN_SH = b"#!/bin/sh\nexec python3 -m agent.main\n"
SPACES = b" " * (512 * 1024)  # compresses ~1000:1, but is under the 1 MiB ratio floor


def info(name, mode=S_REG, system=3, method=zipfile.ZIP_DEFLATED, extra=b""):
    zi = zipfile.ZipInfo(name, FIXED_TIME)
    zi.create_system = system
    zi.external_attr = (mode << 16) | (0x10 if stat.S_ISDIR(mode) else 0)
    zi.compress_type = method
    zi.extra = extra
    return zi


def write_zip(path, entries):
    """entries: (ZipInfo, bytes) pairs, written in order (duplicates allowed)."""
    with zipfile.ZipFile(path, "w") as zf:
        for zi, data in entries:
            zf.writestr(zi, data)


def zeros_entry(zf, zi, total):
    """Streams total zero bytes into one entry, so a bomb never sits in memory."""
    chunk = b"\0" * MIB
    with zf.open(zi, "w", force_zip64=False) as f:
        left = total
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def central_records(data):
    """Yields the offset of each central directory record."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _, cd_off = struct.unpack_from("<HII", data, eocd + 10)
    off = cd_off
    for _ in range(count):
        yield off
        n, m, k = struct.unpack_from("<HHH", data, off + 28)
        off += 46 + n + m + k


def good_basic(path):
    write_zip(path, [
        (info("agent.yaml"), AGENT_YAML),
        (info("agent/"), b""),
        (info("agent/__init__.py"), b""),
        (info("agent/main.py"), MAIN_PY),
        (info("bin/run.sh", stat.S_IFREG | 0o755), RUN_SH),
        (info("data/", S_DIR), b""),
        (info("config/spaces.txt"), SPACES),
        (info("README", method=zipfile.ZIP_STORED), b"read me\n"),
    ])


def good_nested(path):
    # Directories listed explicitly before and after their files, deep nesting, a dotfile.
    write_zip(path, [
        (info("a/", S_DIR), b""),
        (info("a/b/", S_DIR), b""),
        (info("a/b/c.txt"), b"c\n"),
        (info("x/y/z/deep.txt"), b"deep\n"),
        (info("x/y/", S_DIR), b""),
        (info(".hidden"), b"h\n"),
        (info("docs/caf\u00e9.txt"), b"caf\n"),  # UTF-8 flagged: needs a UTF-8 locale
        (info("agent.yaml"), AGENT_YAML),
    ])


def bomb_deflate(path):
    # Deflate tops out near 1030:1; 50 MiB of zeros is ~50 KB on disk.
    with zipfile.ZipFile(path, "w") as zf:
        zeros_entry(zf, info("zeros.bin", method=zipfile.ZIP_DEFLATED), 50 * MIB)


def bomb_bzip2(path):
    # bzip2 turns 20 MiB of zeros into ~70 bytes: far past 10,000:1.
    with zipfile.ZipFile(path, "w") as zf:
        zeros_entry(zf, info("zeros.bin", method=zipfile.ZIP_BZIP2), 20 * MIB)


def bomb_total(path):
    # 24 entries of 512 KiB zeros: each under the 1 MiB ratio floor, 12 MiB together; the
    # test caps the total at 8 MiB.
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(24):
            zeros_entry(zf, info("part%02d.bin" % i), 512 * 1024)


class Unseekable(io.RawIOBase):
    """A write-only stream, so zipfile falls back to data descriptors."""

    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)


def stream_no_cd(path):
    # The bomb_total parts with sizes only in data descriptors and no central directory:
    # only a streaming reader would take it, and that is exactly what is not used.
    buf = io.BytesIO()
    with zipfile.ZipFile(Unseekable(buf), "w") as zf:
        for i in range(24):
            zeros_entry(zf, info("part%02d.bin" % i), 512 * 1024)
    data = buf.getvalue()
    cd_off = struct.unpack_from("<I", data, data.rfind(b"PK\x05\x06") + 16)[0]
    open(path, "wb").write(data[:cd_off])


def method_lzma(path):
    # LZMA sizes its dictionary from the archive (up to 4 GiB): refused before decoding.
    write_zip(path, [(info("agent.yaml", method=zipfile.ZIP_LZMA), AGENT_YAML)])


def prefixed(path):
    # Bytes in front of a zip (a self-extractor's stub): the offsets no longer point at
    # the local headers, so the layout libarchive would trust is not the one checked.
    buf = io.BytesIO()
    good_basic(buf)
    open(path, "wb").write(b"#!/bin/sh\nexit 0\n" * 8 + buf.getvalue())


def many_entries(path):
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(20000):
            zf.writestr(info("f%05d" % i, method=zipfile.ZIP_STORED), b"")


def lying_size(path):
    # 64 KiB of noise whose local and central headers both declare 100 bytes: only counting
    # the bytes while streaming notices (libarchive itself only warns at the very end).
    noise = random.Random(7).randbytes(64 * 1024)
    write_zip(path, [(info("agent.yaml"), AGENT_YAML), (info("noise.bin"), noise)])
    data = bytearray(open(path, "rb").read())
    for off in central_records(bytes(data)):
        n = struct.unpack_from("<H", data, off + 28)[0]
        if bytes(data[off + 46:off + 46 + n]) != b"noise.bin":
            continue
        struct.pack_into("<I", data, off + 24, 100)
        local = struct.unpack_from("<I", data, off + 42)[0]
        struct.pack_into("<I", data, local + 22, 100)
    open(path, "wb").write(bytes(data))


def truncated(path):
    buf = io.BytesIO()
    write_zip(buf, [(info("agent.yaml"), AGENT_YAML),
                    (info("noise.bin"), random.Random(3).randbytes(8192))])
    data = buf.getvalue()
    open(path, "wb").write(data[:len(data) // 2])


def tar_renamed(path):
    with tarfile.open(path, "w") as tf:
        ti = tarfile.TarInfo("agent.yaml")
        ti.size = len(AGENT_YAML)
        tf.addfile(ti, io.BytesIO(AGENT_YAML))


def unicode_path_slip(path):
    # The Info-ZIP Unicode Path extra field (0x7075) replaces the name libarchive reports:
    # "safe.txt" in the header, "../evil" once read.
    real = b"safe.txt"
    upath = b"../evil"
    extra = struct.pack("<HHBI", 0x7075, 5 + len(upath), 1, zlib.crc32(real)) + upath
    write_zip(path, [(info(real.decode(), extra=extra), b"evil\n")])


def hardlink(path):
    # Zip's only hard-link encoding: the PKWARE Unix extra field (0x000d) carrying the
    # "linked to" name after its 12 fixed bytes (APPNOTE 4.5.7). libarchive ignores it.
    target = b"/etc/passwd"
    extra = struct.pack("<HHIIHH", 0x000D, 12 + len(target), 0, 0, 0, 0) + target
    write_zip(path, [(info("passwd", extra=extra), b"")])


def multi_problem(path):
    # One archive breaking several rules, for arch_validate's full report.
    write_zip(path, [
        (info("../up"), b"x"),
        (info("/abs"), b"x"),
        (info("link", stat.S_IFLNK | 0o777), b"/etc"),
        (info("suid", stat.S_IFREG | 0o4755), b"x"),
        (info("ok.txt"), b"x"),
        (info("ok.txt"), b"x"),
    ])


def simple(name, mode=S_REG, data=b"evil\n", system=3):
    return lambda path: write_zip(path, [(info(name, mode, system), data)])


# file name -> (writer, expected arch_error name, PAR_MAX_EXTRACT_MB for the test)
CASES = [
    ("good_basic.zip", good_basic, "ok", 1024),
    ("good_nested.zip", good_nested, "ok", 1024),
    ("slip_dotdot.zip", simple("../evil"), "dotdot", 1024),
    ("slip_nested.zip", simple("a/../../evil"), "dotdot", 1024),
    # libarchive rewrites '\' to '/' in a name without '/': the raw central directory scan
    # still sees the backslash.
    ("slip_backslash.zip", simple("..\\evil", system=0), "backslash", 1024),
    ("backslash_plain.zip", simple("a\\b"), "backslash", 1024),
    ("slip_unicode_path.zip", unicode_path_slip, "dotdot", 1024),
    ("absolute.zip", simple("/tmp/par-hostile-evil"), "absolute", 1024),
    ("symlink_out.zip", simple("link", stat.S_IFLNK | 0o777, b"/etc"), "symlink", 1024),
    ("symlink_through.zip", lambda p: write_zip(p, [
        (info("link", stat.S_IFLNK | 0o777), b".."),
        (info("link/evil"), b"evil\n")]), "symlink", 1024),
    ("hardlink.zip", hardlink, "hardlink", 1024),
    ("chardev.zip", simple("null", stat.S_IFCHR | 0o666, b""), "device", 1024),
    ("blockdev.zip", simple("sda", stat.S_IFBLK | 0o660, b""), "device", 1024),
    # libarchive turns a FIFO into a regular file (an Info-ZIP workaround): raw scan again.
    ("fifo.zip", simple("pipe", stat.S_IFIFO | 0o644, b""), "fifo", 1024),
    ("socket.zip", simple("sock", stat.S_IFSOCK | 0o644, b""), "special", 1024),
    ("setuid.zip", simple("su", stat.S_IFREG | 0o4755), "setuid", 1024),
    ("setgid_dir.zip", simple("d/", stat.S_IFDIR | 0o2755, b""), "setuid", 1024),
    ("bomb_deflate.zip", bomb_deflate, "ratio", 1024),
    ("bomb_bzip2.zip", bomb_bzip2, "ratio", 1024),
    ("bomb_total.zip", bomb_total, "total_size", 8),
    ("stream_no_cd.zip", stream_no_cd, "truncated", 8),
    ("many_entries.zip", many_entries, "too_many_entries", 1024),
    ("lying_size.zip", lying_size, "size_mismatch", 1024),
    ("duplicate.zip", lambda p: write_zip(p, [(info("agent.yaml"), b"a"),
                                              (info("agent.yaml"), b"b")]), "duplicate", 1024),
    ("file_over_dir.zip", lambda p: write_zip(p, [(info("a/b"), b"b"), (info("a"), b"a")]),
     "duplicate", 1024),
    ("dir_over_file.zip", lambda p: write_zip(p, [(info("a"), b"a"), (info("a/b"), b"b")]),
     "duplicate", 1024),
    ("method_lzma.zip", method_lzma, "method", 1024),
    ("prefixed.zip", prefixed, "truncated", 1024),
    ("tar_renamed.apkg", tar_renamed, "not_zip", 1024),
    ("empty_file.apkg", lambda p: open(p, "wb").close(), "not_zip", 1024),
    ("truncated.zip", truncated, "truncated", 1024),
    ("empty_name.zip", simple(""), "empty_name", 1024),
    ("long_name.zip", simple("n" * 300), "name_too_long", 1024),
    ("multi_problem.zip", multi_problem, "dotdot", 1024),
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_hostile_zips.py OUTDIR")
    out = sys.argv[1]
    warnings.simplefilter("ignore")  # zipfile warns about the duplicates we mean to write
    os.makedirs(out, exist_ok=True)
    rows = []
    for name, writer, want, max_mb in CASES:
        writer(os.path.join(out, name))
        rows.append("%s\t%s\t%d\n" % (name, want, max_mb))
    tmp = os.path.join(out, "expected.tsv.tmp")
    with open(tmp, "w") as f:
        f.write("# file\tarch_error_name\tmax_extract_mb\n")
        f.writelines(rows)
    os.replace(tmp, os.path.join(out, "expected.tsv"))
    print("wrote %d archives to %s" % (len(rows), out))


if __name__ == "__main__":
    main()
