/* Batched creation of a layer's small new files, for dockyard.layers.newfiles.

   The unpacker (Python) parses and checks every member; for runs of plain regular files in
   one directory it packs records of (name, mode, mtime, data) and hands them to
   dy_files_worker, which creates them on its own thread without the GIL: the kernel's work
   per file (openat, write, futimens, close) overlaps with the parsing of the next files.

   Each record: struct dy_rec, then the name (name_len bytes and a NUL), then size bytes of
   data. A file is created exactly as the Python path does: openat(dirfd, name,
   O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode), all its data written, atime and mtime
   set, closed. The name is a single component (no '/', no NUL: the caller checked it, and so
   does this code). */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct dy_rec { uint32_t name_len, mode; uint64_t size; int64_t mtime_ns; };
struct dy_job { int32_t dirfd, pad; uint64_t buf, len; };
struct dy_res { int64_t n; int32_t err, pad; };

/* Creates the files of buf[0:len] in dirfd, in order. Returns how many were created; on an
   error *err is set and the return value is n (record n was not created: its open failed)
   or -(n + 1) (record n was created but writing it failed). */
long dy_create_files(int dirfd, const unsigned char *buf, size_t len, int *err)
{
    size_t pos = 0;
    long n = 0;
    *err = 0;
    while (pos < len) {
        struct dy_rec r;
        if (len - pos < sizeof r) { *err = EINVAL; return n; }
        memcpy(&r, buf + pos, sizeof r);
        pos += sizeof r;
        if (r.name_len == 0 || r.name_len > 65535 || len - pos < (size_t)r.name_len + 1
            || buf[pos + r.name_len] != 0 || memchr(buf + pos, '/', r.name_len)
            || memchr(buf + pos, 0, r.name_len)) {
            *err = EINVAL;
            return n;
        }
        const char *name = (const char *)buf + pos;
        pos += (size_t)r.name_len + 1;
        if (len - pos < r.size) { *err = EINVAL; return n; }
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, r.mode & 07777);
        if (fd < 0) { *err = errno; return n; }
        const unsigned char *p = buf + pos;
        uint64_t left = r.size;
        while (left) {
            ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : (size_t)left);
            if (w < 0) {
                if (errno == EINTR) continue;
                *err = errno;
                close(fd);
                return -(n + 1);
            }
            p += w;
            left -= (uint64_t)w;
        }
        pos += r.size;
        struct timespec ts[2];
        ts[0].tv_sec = (time_t)(r.mtime_ns / 1000000000);
        ts[0].tv_nsec = (long)(r.mtime_ns % 1000000000);
        if (ts[0].tv_nsec < 0) { ts[0].tv_nsec += 1000000000; ts[0].tv_sec -= 1; }
        ts[1] = ts[0];
        if (futimens(fd, ts) < 0) { *err = errno; close(fd); return -(n + 1); }
        if (close(fd) < 0 && errno != EINTR) { *err = errno; return -(n + 1); }
        n++;
    }
    return n;
}

static int io_full(int fd, void *p, size_t len, int wr)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = wr ? write(fd, (char *)p + done, len - done) : read(fd, (char *)p + done, len - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return done == 0 ? 0 : -1;
        done += (size_t)r;
    }
    return 1;
}

/* Runs jobs (struct dy_job: a directory fd and the address and length of a record buffer the
   caller keeps alive until it has read the job's result) from jobfd, one struct dy_res per job
   to resfd, until jobfd is closed (returns 0) or a pipe fails (-1). */
int dy_files_worker(int jobfd, int resfd)
{
    for (;;) {
        struct dy_job j;
        struct dy_res s = {0, 0, 0};
        int r = io_full(jobfd, &j, sizeof j, 0);
        if (r <= 0) return r;
        s.n = dy_create_files(j.dirfd, (const unsigned char *)(uintptr_t)j.buf, (size_t)j.len, &s.err);
        if (io_full(resfd, &s, sizeof s, 1) <= 0) return -1;
    }
}
