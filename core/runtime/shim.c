/*
 * dockyard-shim: launcher and monitor of one container (the "native" runtime).
 *
 * Usage: dockyard-shim <specfile>
 *
 * Exec mode (spec has "exec_root"): the same launcher/monitor, but the process joins a running
 * container instead of building a new one, in runc's nsexec order, so that nothing of the
 * engine is ever visible inside the container before it is fully confined:
 *   monitor (host namespaces, never enters the container)
 *     -> intermediate (plain fork, host pid namespace, so invisible to the container): becomes
 *        non-dumpable, joins the cgroups, then every namespace from the "exec_ns" records
 *        (pid only for its children), chroots into "exec_root" (= /proc/<pid 1>/root, opened
 *        before any setns), sets up the pty, rlimits and cwd, drops to the container's
 *        uid/gid/groups, capabilities (bounding, effective, permitted, inheritable, ambient),
 *        no_new_privs and seccomp filter, and only THEN
 *     -> clone(CLONE_PARENT): the final process, the first one in the container's pid
 *        namespace, a child of the monitor (which waits for it); it only calls setsid,
 *        takes its controlling tty and execve()s. The intermediate reports its pid and exits.
 * A container that polls /proc (even with CAP_SYS_PTRACE) can only ever see a process that
 * already has its own root, credentials, capabilities and seccomp filter, and is non-dumpable
 * until execve. Run mode with --pid container:X does the same: the child builds the container
 * outside X's pid namespace (/proc mounted with pidns=X's) and forks its process into it once
 * confined. With CLONE_NEWPID the child is pid 1 of a namespace nobody else is in.
 *
 * The daemon (dockyard.runtime.spec) precomputes everything; this program only executes a
 * list of operations. Spec format: records "<key> <len>\n<len bytes>\n"; multi-field
 * payloads separate fields with NUL bytes. See core/runtime/spec.py for the keys.
 *
 * Protocol on stdout (one line): "ok <container_pid> <monitor_pid>" or
 * "error <errno> <stage> [detail]". The process started by the daemon forks the monitor
 * and exits at once (exec mode with "monitor_child": it is the monitor, and the daemon reaps
 * it); the monitor calls setsid, survives the daemon, logs the container's
 * output (binary records, see logfile.py), waits for it and writes the exit file
 * "<code> <signal> <finished_at_ns>\n" atomically, then exits.
 *
 * Stdin ("stdin" key): the daemon writes into the "<state_dir>/stdin" FIFO. When its writers
 * close it: with "stdin_once" and no TTY the process's stdin is closed (EOF); an exec's TTY is
 * hung up (SIGHUP to its process group); else the FIFO waits for the next writer (a container's
 * TTY outlives its clients, as in Docker). The "control" FIFO (TTY only) takes lines
 * "resize <rows> <cols>" and "detach" (the next close is a detach: never EOF nor hangup).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* ---------------------------------------------------------------- spec records */
struct rec { const char *key; char *data; size_t len; };
static struct rec *recs;
static int nrecs;

static void status_error(int err, const char *stage, const char *detail)
{
    printf("error %d %s %s\n", err, stage, detail ? detail : "");
    fflush(stdout);
}

static int parse_spec(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return -1;
    char *buf = malloc(st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0) { close(fd); errno = EIO; return -1; }
        got += n;
    }
    close(fd);
    char *p = buf, *end = buf + got;
    int cap = 64;
    recs = malloc(cap * sizeof *recs);
    while (p < end) {
        char *sp = memchr(p, ' ', end - p);
        if (!sp) break;
        *sp = 0;
        char *nl;
        size_t len = strtoul(sp + 1, &nl, 10);
        if (*nl != '\n' || nl + 1 + len >= end + 1 || nl[1 + len] != '\n') { errno = EINVAL; return -1; }
        if (nrecs == cap) { cap *= 2; recs = realloc(recs, cap * sizeof *recs); }
        recs[nrecs].key = p;
        recs[nrecs].data = nl + 1;
        recs[nrecs].len = len;
        nl[1 + len] = 0;
        nrecs++;
        p = nl + 2 + len;
    }
    return 0;
}

static const char *get(const char *key)
{
    for (int i = 0; i < nrecs; i++)
        if (!strcmp(recs[i].key, key)) return recs[i].data;
    return NULL;
}

static long long get_ll(const char *key, long long dflt)
{
    const char *v = get(key);
    return v ? strtoll(v, NULL, 0) : dflt;
}

/* i-th NUL-separated field of a record payload */
static char *field(struct rec *r, int i)
{
    char *p = r->data, *end = r->data + r->len;
    while (i-- > 0) {
        p += strlen(p) + 1;
        if (p > end) return "";
    }
    return p;
}

static int count(const char *key)
{
    int n = 0;
    for (int i = 0; i < nrecs; i++) n += !strcmp(recs[i].key, key);
    return n;
}

/* ---------------------------------------------------------------- child (container) */
static int errfd = -1;

static void die(const char *stage, const char *detail, int err)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%d %s %s", err, stage, detail ? detail : "");
    if (n > (int)sizeof buf) n = sizeof buf;
    if (write(errfd, buf, n) < 0) { /* nothing to do */ }
    _exit(127);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}

static int setattr(int dfd, const char *path, unsigned flags, unsigned long long set)
{
    struct mount_attr a = { .attr_set = set };
    return mount_setattr(dfd, path, flags, &a, sizeof a);
}

/* attributes and propagation (MS_PRIVATE/MS_SLAVE/MS_SHARED) of a detached bind tree */
static int setattr_prop(int fd, unsigned flags, unsigned long long set, unsigned long long prop)
{
    struct mount_attr a = { .attr_set = set, .propagation = prop };
    return mount_setattr(fd, "", AT_EMPTY_PATH | flags, &a, sizeof a);
}

/* Mount targets are resolved inside the container's root (after pivot_root: "/") with
 * openat2(RESOLVE_IN_ROOT): ".." and absolute symlinks stop at the root, /proc magic links are
 * refused, so an image's symlink can never send a mount outside the rootfs. Missing
 * directories are created on the way (following in-root symlinks, even dangling ones, as
 * runc's securejoin does) and the last component as a directory or an empty file. Returns
 * an O_PATH fd of the target. */
#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
static int openat2_(int dfd, const char *path, uint64_t flags, uint64_t resolve)
{
    struct open_how how = { .flags = flags, .mode = 0, .resolve = resolve };
    /* EAGAIN: a rename or mount anywhere on the host raced a ".." walk and the kernel could not
     * prove it stayed inside the root; openat2(2) says retry (as runc's libpathrs does). Under
     * mount churn (other containers starting) this failed container starts. */
    for (int tries = 0;; tries++) {
        int fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN || tries >= 256)
            return fd;
    }
}

static int open_in_root(int rootfd, const char *path, int dir)
{
    char cur[4096];
    snprintf(cur, sizeof cur, "%s", path);
    for (int step = 0; step < 256; step++) {
        int fd = openat2_(rootfd, cur, O_PATH | O_CLOEXEC, IN_ROOT);
        if (fd >= 0 || errno != ENOENT) return fd;
        /* the first missing component: create it, or follow the dangling symlink it is */
        char prefix[4096] = "";
        const char *s = cur;
        for (;;) {
            while (*s == '/') s++;
            if (!*s) { errno = ENOENT; return -1; }
            const char *e = strchrnul(s, '/');
            char next[4096];
            snprintf(next, sizeof next, "%s/%.*s", prefix, (int)(e - s), s);
            int probe = openat2_(rootfd, next, O_PATH | O_CLOEXEC, IN_ROOT);
            if (probe >= 0) { close(probe); snprintf(prefix, sizeof prefix, "%s", next); s = e; continue; }
            if (errno != ENOENT) return -1;
            int pfd = openat2_(rootfd, *prefix ? prefix : "/", O_PATH | O_DIRECTORY | O_CLOEXEC, IN_ROOT);
            if (pfd < 0) return -1;
            char comp[256];
            if ((size_t)(e - s) >= sizeof comp) { close(pfd); errno = ENAMETOOLONG; return -1; }
            memcpy(comp, s, e - s);
            comp[e - s] = 0;
            struct stat st;
            int rc = 0;
            if (fstatat(pfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                char link[4096];
                ssize_t n = readlinkat(pfd, comp, link, sizeof link - 1);
                if (n < 0) rc = -1;
                else {
                    link[n] = 0;
                    char rest[4096];
                    snprintf(rest, sizeof rest, "%s", e);
                    int len = link[0] == '/' ? snprintf(cur, sizeof cur, "%s%s", link, rest)
                                             : snprintf(cur, sizeof cur, "%s/%s%s", prefix, link, rest);
                    if (len >= (int)sizeof cur) { errno = ENAMETOOLONG; rc = -1; }
                }
            } else if (*e || dir) {
                rc = mkdirat(pfd, comp, 0755) < 0 && errno != EEXIST ? -1 : 0;
            } else {
                int f = openat(pfd, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f >= 0) close(f); else if (errno != EEXIST) rc = -1;
            }
            int saved = errno;
            close(pfd);
            errno = saved;
            if (rc < 0) return -1;
            break;
        }
    }
    errno = ELOOP;
    return -1;
}

/* a proc mount showing the pid namespace "nsfd" (linux 6.17+: procfs "pidns"), for a process
 * that is not in it; MS_NOSUID/MS_NODEV/MS_NOEXEC are MOUNT_ATTR_* bits of the same values */
static int mount_proc_of(int nsfd, const char *target, unsigned long msflags)
{
    int fs = fsopen("proc", FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    if (fsconfig(fs, FSCONFIG_SET_FD, "pidns", NULL, nsfd) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) { int saved = errno; close(fs); errno = saved; return -1; }
    int mfd = fsmount(fs, FSMOUNT_CLOEXEC, msflags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
    int saved = errno;
    close(fs);
    if (mfd < 0) { errno = saved; return -1; }
    int rc = move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    saved = errno;
    close(mfd);
    errno = saved;
    return rc;
}

/* whether this kernel's procfs takes "pidns" (else a pid namespace is joined the old way) */
static int proc_pidns_supported(int nsfd)
{
    int fs = fsopen("proc", FSOPEN_CLOEXEC);
    if (fs < 0) return 0;
    int ok = fsconfig(fs, FSCONFIG_SET_FD, "pidns", NULL, nsfd) == 0;
    close(fs);
    return ok;
}

/* "tmpfs" op: a new tmpfs (fsopen) attached on an in-root target; data "size=..,mode=.." */
static int mount_tmpfs(int tfd, unsigned long long attr, const char *data)
{
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    if (fsconfig(fs, FSCONFIG_SET_STRING, "source", "tmpfs", 0) < 0) { int saved = errno; close(fs); errno = saved; return -1; }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", data);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) *eq = 0;
        if (fsconfig(fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, kv, eq ? eq + 1 : NULL, 0) < 0) {
            int saved = errno; close(fs); errno = saved; return -1;
        }
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) { int saved = errno; close(fs); errno = saved; return -1; }
    int mfd = fsmount(fs, FSMOUNT_CLOEXEC, attr);
    int saved = errno;
    close(fs);
    if (mfd < 0) { errno = saved; return -1; }
    int rc = move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    saved = errno;
    close(mfd);
    errno = saved;
    return rc;
}

static const char *getenv_in(char **env, const char *name)
{
    size_t n = strlen(name);
    for (; *env; env++)
        if (!strncmp(*env, name, n) && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

/* PATH lookup like Go's exec.LookPath: returns a path or NULL with *err set. */
static char *lookup(const char *name, char **env, int *err)
{
    if (strchr(name, '/')) return (char *)name;
    const char *path = getenv_in(env, "PATH");
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int saw_eacces = 0;
    static char buf[4096];
    const char *p = path;
    for (;;) {
        const char *c = strchr(p, ':');
        size_t dl = c ? (size_t)(c - p) : strlen(p);
        if (dl == 0) snprintf(buf, sizeof buf, "./%s", name);
        else snprintf(buf, sizeof buf, "%.*s/%s", (int)dl, p, name);
        struct stat st;
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(buf, X_OK) == 0) return buf;
            saw_eacces = 1;
        }
        if (!c) break;
        p = c + 1;
    }
    *err = saw_eacces ? EACCES : ENOENT;
    return NULL;
}

static void load_seccomp(void)
{
    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "seccomp")) continue;
        struct sock_fprog prog = { .len = recs[i].len / 8, .filter = (struct sock_filter *)recs[i].data };
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) die("seccomp", NULL, errno);
    }
}

static int send_fd(int sock, int fd)
{
    char c = 'm';
    struct iovec iov = { &c, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) < 0 ? -1 : 0;
}

static int recv_fd(int sock)
{
    char c;
    struct iovec iov = { &c, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* ---------------------------------------------------------------- user namespace (userns-remap)
 * Run mode with "uid_map"/"gid_map": the child is cloned with CLONE_NEWUSER (with the other
 * namespaces, which the new user namespace then owns) and waits on userns_sync until the
 * monitor, still host root, has written its maps and done for it what needs host privileges
 * (joining the cgroups, oom_score_adj, raising rlimits), as runc's parent does. Until it
 * becomes root of its namespace (after pivot_root) the child keeps the host's uid 0, without
 * capabilities on the host: it clones the bind sources and the rootfs as the host's owner. */
static int userns_sync[2] = { -1, -1 };

static int write_proc(pid_t pid, const char *name, const char *data)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = strlen(data);
    int rc = write(fd, data, n) == (ssize_t)n ? 0 : -1;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* monitor: prepare the child (cgroups, oom score, rlimits, maps), then let it go on.
 * Returns 0, or -1 with errno and *stage set. */
static int userns_release(pid_t cpid, const char **stage)
{
    char num[32];
    snprintf(num, sizeof num, "%d", (int)cpid);
    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "cgroup")) continue;
        int fd = open(recs[i].data, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, num, strlen(num)) < 0) { *stage = "cgroup"; if (fd >= 0) close(fd); return -1; }
        close(fd);
    }
    const char *oom = get("oom_score_adj");
    if (oom && write_proc(cpid, "oom_score_adj", oom) < 0) { *stage = "oom_score_adj"; return -1; }
    for (int i = 0; i < nrecs; i++) { /* raising a limit needs CAP_SYS_RESOURCE on the host */
        if (strcmp(recs[i].key, "rlimit")) continue;
        int res; long long soft, hard;
        if (sscanf(recs[i].data, "%d %lld %lld", &res, &soft, &hard) != 3) { *stage = "rlimit"; errno = EINVAL; return -1; }
        struct rlimit rl = { soft < 0 ? RLIM_INFINITY : (rlim_t)soft, hard < 0 ? RLIM_INFINITY : (rlim_t)hard };
        if (prlimit(cpid, res, &rl, NULL) < 0) { *stage = "rlimit"; return -1; }
    }
    if (write_proc(cpid, "uid_map", get("uid_map")) < 0) { *stage = "uid_map"; return -1; }
    if (write_proc(cpid, "gid_map", get("gid_map")) < 0) { *stage = "gid_map"; return -1; }
    if (write(userns_sync[1], "1", 1) != 1) { *stage = "userns-sync"; return -1; }
    close(userns_sync[1]);
    return 0;
}

/* child: wait for the monitor (EOF: it failed, reports it and reaps us) */
static void userns_wait(void)
{
    char c = 0;
    close(userns_sync[1]);
    while (read(userns_sync[0], &c, 1) < 0 && errno == EINTR) {}
    if (c != '1') _exit(127);
    close(userns_sync[0]);
}

/* child, before pivot_root: proc and sysfs are mounted while the host's /proc and /sys are still
 * in our mount namespace (the kernel lets a user namespace mount them only if an unobstructed
 * instance is visible), on targets resolved inside the rootfs. sysfs needs a network namespace
 * our user namespace owns: in one the host made (a network's sandbox, another container's)
 * the host's /sys is bound instead, read-only, as runc does. Returns the ops done here. */
static char *userns_premount(const char *rootfs)
{
    char *done = calloc(nrecs, 1);
    int rfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!done || rfd < 0) die("open-root", rootfs, errno);
    for (int i = 0; i < nrecs; i++) {
        struct rec *r = &recs[i];
        if (strcmp(r->key, "op") || strcmp(field(r, 0), "mount")) continue;
        const char *fstype = field(r, 3), *tgt = field(r, 2), *data = field(r, 5);
        int sysfs = !strcmp(fstype, "sysfs");
        if (!sysfs && strcmp(fstype, "proc")) continue;
        unsigned long fl = strtoul(field(r, 4), NULL, 0);
        int tfd = open_in_root(rfd, tgt, 1);
        if (tfd < 0) die("mkdir", tgt, errno);
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", tfd);
        if (mount(field(r, 1), fdpath, fstype, fl, *data ? data : NULL) < 0) {
            if (!sysfs || errno != EPERM) die("mount", tgt, errno);
            int t = open_tree(AT_FDCWD, "/sys", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
            unsigned long long attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                                      ((fl & MS_RDONLY) ? MOUNT_ATTR_RDONLY : 0);
            if (t < 0 || setattr_prop(t, AT_RECURSIVE, attr, MS_PRIVATE) < 0 ||
                move_mount(t, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                die("mount", "/sys (bind)", errno);
            close(t);
        }
        close(tfd);
        done[i] = 1;
    }
    close(rfd);
    return done;
}

/* child, --pid container:X under remapping ("userns_join"): X's user namespace, as Docker
 * shares it, so that the pid namespace (X's) is one ours may mount /proc of. Cloned without
 * namespace flags, the child does as host root what needs it (cgroups and oom score are done
 * by then; rlimits here), then joins X's user namespace and makes the others in it. */
static void userns_enter(void)
{
    for (int i = 0; i < nrecs; i++) { /* raising a limit needs CAP_SYS_RESOURCE on the host */
        if (strcmp(recs[i].key, "rlimit")) continue;
        int res; long long soft, hard;
        if (sscanf(recs[i].data, "%d %lld %lld", &res, &soft, &hard) != 3) die("rlimit", recs[i].data, EINVAL);
        struct rlimit rl = { soft < 0 ? RLIM_INFINITY : (rlim_t)soft, hard < 0 ? RLIM_INFINITY : (rlim_t)hard };
        if (setrlimit(res, &rl) < 0) die("rlimit", recs[i].data, errno);
    }
    const char *path = get("userns_join");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0) die("setns", path, errno);
    close(fd);
    if (unshare((int)get_ll("userns_unshare", 0)) < 0) die("unshare", "namespaces", errno);
}

/* child, after pivot_root: become root of the user namespace (the host's uid of the map) */
static void userns_become_root(void)
{
    if (setresgid(0, 0, 0) < 0) die("setgid", "user namespace root", errno);
    if (setresuid(0, 0, 0) < 0) die("setuid", "user namespace root", errno);
}

/* ---------------------------------------------------------------- joining the cgroups fast
 * Moving a process through cgroup.procs takes the kernel's threadgroup lock for writing, and
 * that waits for an RCU grace period unless another move happened just before: ~12 ms a start
 * here, the biggest single cost of a container start. Neither way below takes it:
 * - v1: this process is single-threaded, so "0" (itself) written to the hierarchy's `tasks`
 *   file moves the whole process; the kernel skips the lock for the writer's own thread.
 * - v2 (the unified tree; no `tasks` file): the child is cloned straight into the cgroup
 *   (clone3 CLONE_INTO_CGROUP, which only reads the lock). Where that fails (kernel < 5.7, a
 *   refusal), the child writes cgroup.procs as before. */
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
struct shim_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
             set_tid, set_tid_size, cgroup;
};
static int cg_placed = -1; /* the "cgroup" record the child was cloned into */

/* an fd to write "0" to for joining the cgroup of `procs` (a .../cgroup.procs path) */
static int cgroup_self_fd(const char *procs)
{
    size_t n = strlen(procs);
    const char *leaf = "cgroup.procs";
    if (n > strlen(leaf) && !strcmp(procs + n - strlen(leaf), leaf)) {
        char tasks[4096];
        snprintf(tasks, sizeof tasks, "%.*stasks", (int)(n - strlen(leaf)), procs);
        int fd = open(tasks, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) return fd;
    }
    return open(procs, O_WRONLY | O_CLOEXEC);
}

/* fork-like clone of the child with `flags` (namespaces), into the v2 cgroup of the "cgroup"
 * records if there is one (sets cg_placed); the plain clone where clone3 cannot do that */
static pid_t clone_child(long flags, int records_joined_by_child)
{
    int cgfd = -1, idx = -1;
    for (int i = 0; records_joined_by_child && i < nrecs && cgfd < 0; i++) {
        if (strcmp(recs[i].key, "cgroup")) continue;
        size_t n = strlen(recs[i].data);
        const char *leaf = "/cgroup.procs";
        if (n <= strlen(leaf) || strcmp(recs[i].data + n - strlen(leaf), leaf)) continue;
        char dir[4096], tasks[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(n - strlen(leaf)), recs[i].data);
        snprintf(tasks, sizeof tasks, "%s/tasks", dir);
        if (access(tasks, F_OK) == 0) continue; /* a v1 hierarchy: the child uses `tasks` */
        cgfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        idx = i;
    }
    if (cgfd >= 0) {
        struct shim_clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = (uint64_t)flags | CLONE_INTO_CGROUP;
        a.exit_signal = SIGCHLD;
        a.cgroup = (uint64_t)cgfd;
        pid_t p = (pid_t)syscall(SYS_clone3, &a, sizeof a);
        if (p == 0) { close(cgfd); cg_placed = idx; return 0; }
        close(cgfd);
        if (p > 0) { cg_placed = idx; return p; }
        /* refused (ENOSYS, EINVAL, ...): the plain clone, the child writes cgroup.procs */
    }
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

struct child_io {
    int in, out, err, sock, tty; int cap_last;
    int pidw;                        /* exec mode: the intermediate reports the final pid here */
    int pidjoin;                     /* run mode, --pid container:X: X's pid namespace (fd) */
    int *joinfd, *joinflag, njoin;   /* run mode: namespaces of other containers to join */
};

static void child_main(struct child_io *io)
{
    /* Non-dumpable first, until execve: nobody without CAP_SYS_PTRACE may ptrace this process
     * or open its /proc/PID files (root, cwd, exe, fd, mem) while it runs the shim's code with
     * host privileges. execve() of a root process makes it dumpable again (euid == uid), so
     * the container's own processes are as usual. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("dumpable", NULL, errno);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, 0);
    int userns = get("uid_map") && !get("exec_root"); /* run mode in a user namespace */
    int userns_join = get("userns_join") && !get("exec_root"); /* run mode in another's */
    if (userns) userns_wait(); /* until the monitor wrote our uid/gid maps */

    /* run mode: namespaces of other containers (--network container:X, ...), opened by the
     * monitor, are joined here so the monitor itself never enters a container */
    for (int i = 0; i < io->njoin; i++) {
        if (setns(io->joinfd[i], io->joinflag[i]) < 0) die("setns", "namespace", errno);
        close(io->joinfd[i]);
    }
    /* run mode, --pid container:X: this process builds the container outside X's pid namespace
     * (X cannot see it) and, confined, forks the container's process into it (as in exec mode);
     * /proc is mounted with pidns= (X's) since this process is not in it */
    if (io->pidjoin >= 0 && setns(io->pidjoin, CLONE_NEWPID) < 0) die("setns", "pid namespace", errno);

    /* cgroups first, before anything can fork */
    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "cgroup") || userns) continue; /* userns: joined by the monitor */
        if (i == cg_placed) continue; /* cloned into it (v2: CLONE_INTO_CGROUP) */
        int fd = cgroup_self_fd(recs[i].data);
        if (fd < 0 || write(fd, "0", 1) != 1) die("cgroup", recs[i].data, errno);
        close(fd);
    }
    /* before caps are dropped: lowering the score needs CAP_SYS_RESOURCE */
    const char *oom = userns ? NULL : get("oom_score_adj"); /* userns: set by the monitor */
    if (oom) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, oom, strlen(oom)) < 0) die("oom_score_adj", oom, errno);
        close(fd);
    }
    /* a cgroup namespace made now is rooted at the container's cgroups, not the monitor's */
    if (userns_join) userns_enter();
    if (get("cgroupns") && unshare(CLONE_NEWCGROUP) < 0) die("unshare", "cgroup namespace", errno);
    const char *exec_root = get("exec_root");
    if (!exec_root) setsid(); /* exec mode: the final process makes its own session */
    if (!io->tty) {
        if (dup2(io->in, 0) < 0 || dup2(io->out, 1) < 0 || dup2(io->err, 2) < 0) die("stdio", NULL, errno);
    } else {
        if (dup2(io->in, 0) < 0) die("stdio", NULL, errno); /* replaced by the pty below */
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 1); dup2(nul, 2);
        if (nul > 2) close(nul);
    }

    if (exec_root) {
        /* exec mode (this is the intermediate, in the host's pid namespace): join the running
         * container's namespaces and root instead of building one. Every fd is opened first:
         * after setns(mnt) /proc is the container's. setns(pid) only places the children. */
        int rootfd = open(exec_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) die("exec-root", exec_root, errno);
        int nsfd[16], nsflag[16], nns = 0;
        for (int i = 0; i < nrecs && nns < 16; i++) {
            if (strcmp(recs[i].key, "exec_ns")) continue;
            nsflag[nns] = strtol(field(&recs[i], 0), NULL, 0);
            nsfd[nns] = open(field(&recs[i], 1), O_RDONLY | O_CLOEXEC);
            if (nsfd[nns] < 0) die("setns", field(&recs[i], 1), errno);
            nns++;
        }
        for (int i = 0; i < nns; i++) {
            if (setns(nsfd[i], nsflag[i]) < 0) die("setns", "namespace", errno);
            close(nsfd[i]);
        }
        if (fchdir(rootfd) < 0 || chroot(".") < 0) die("chroot", exec_root, errno);
        close(rootfd);
        if (chdir("/") < 0) die("chdir", "/", errno);
    } else {
    const char *rootfs = get("rootfs");

    /* bind sources are host paths: clone them as detached trees before pivot_root, and before
     * / turns private so a clone of a shared mount can stay a slave or peer of the host's
     * (bind propagation rslave/rshared); every other clone is made private. */
    int *bindfd = calloc(nrecs, sizeof(int));
    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "op") || strcmp(field(&recs[i], 0), "bind")) continue;
        const char *src = field(&recs[i], 1);
        unsigned long long attr = strtoull(field(&recs[i], 3), NULL, 0);
        int rec = atoi(field(&recs[i], 4));
        unsigned long long prop = strtoull(field(&recs[i], 5), NULL, 0);
        int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
        if (fd < 0) die("bind-source", src, errno);
        if (setattr_prop(fd, rec ? AT_RECURSIVE : 0, attr, prop ? prop : MS_PRIVATE) < 0)
            die("bind-attr", src, errno);
        bindfd[i] = fd;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("mount", "make / private", errno);
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) die("mount", rootfs, errno);
    char *premounted = userns || userns_join ? userns_premount(rootfs) : NULL;

    if (chdir(rootfs) < 0) die("chdir-rootfs", rootfs, errno);
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root", rootfs, errno);
    if (umount2(".", MNT_DETACH) < 0) die("umount-oldroot", NULL, errno);
    if (chdir("/") < 0) die("chdir", "/", errno);
    if (userns || userns_join) userns_become_root();
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) die("open-root", "/", errno);

    for (int i = 0; i < nrecs; i++) {
        struct rec *r = &recs[i];
        if (strcmp(r->key, "op")) continue;
        const char *kind = field(r, 0);
        if (premounted && premounted[i]) continue;
        if (!strcmp(kind, "mount")) {
            const char *tgt = field(r, 2);
            if (mkdir_p(tgt, 0755) < 0) die("mkdir", tgt, errno);
            const char *data = field(r, 5);
            if (io->pidjoin >= 0 && !strcmp(field(r, 3), "proc")) {
                if (mount_proc_of(io->pidjoin, tgt, strtoul(field(r, 4), NULL, 0)) < 0) die("mount", tgt, errno);
            } else if (mount(field(r, 1), tgt, field(r, 3), strtoul(field(r, 4), NULL, 0), *data ? data : NULL) < 0)
                die("mount", tgt, errno);
        } else if (!strcmp(kind, "bind")) {
            const char *tgt = field(r, 2);
            struct stat st;
            if (fstat(bindfd[i], &st) < 0) die("bind-stat", tgt, errno);
            int tfd = open_in_root(rootfd, tgt, S_ISDIR(st.st_mode));
            if (tfd < 0) die("mkdir", tgt, errno);
            if (move_mount(bindfd[i], "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                die("bind", tgt, errno);
            close(tfd);
            close(bindfd[i]);
        } else if (!strcmp(kind, "tmpfs")) {
            const char *tgt = field(r, 1);
            int tfd = open_in_root(rootfd, tgt, 1);
            if (tfd < 0) die("mkdir", tgt, errno);
            if (mount_tmpfs(tfd, strtoull(field(r, 2), NULL, 0), field(r, 3)) < 0) die("mount", tgt, errno);
            close(tfd);
        } else if (!strcmp(kind, "symlink")) {
            if (symlink(field(r, 1), field(r, 2)) < 0 && errno != EEXIST) die("symlink", field(r, 2), errno);
        } else if (!strcmp(kind, "mkdir")) {
            if (mkdir_p(field(r, 1), strtoul(field(r, 2), NULL, 8)) < 0) die("mkdir", field(r, 1), errno);
        } else if (!strcmp(kind, "mask")) {
            const char *p = field(r, 1);
            struct stat st;
            if (stat(p, &st) < 0) continue; /* missing on this kernel: skip */
            int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
                                         : mount("/dev/null", p, NULL, MS_BIND, NULL);
            if (rc < 0) die("mask", p, errno);
        } else if (!strcmp(kind, "sysctl")) {
            /* sysctl\0key\0value: an IPC namespace sysctl, in the container's namespace */
            char p[512];
            int n = snprintf(p, sizeof p, "/proc/sys/%s", field(r, 1));
            if (n < 0 || n >= (int)sizeof p || strstr(p, "..")) die("sysctl", field(r, 1), EINVAL);
            for (char *q = p + 10; *q; q++) if (*q == '.') *q = '/';
            int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            const char *v = field(r, 2);
            if (fd < 0 || write(fd, v, strlen(v)) < 0) die("sysctl", field(r, 1), errno);
            close(fd);
        } else if (!strcmp(kind, "ropath")) {
            const char *p = field(r, 1);
            struct stat st;
            if (stat(p, &st) < 0) continue;
            if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                setattr(AT_FDCWD, p, AT_RECURSIVE, MOUNT_ATTR_RDONLY) < 0)
                die("readonly", p, errno);
        } else if (!strcmp(kind, "mknod")) {
            /* mknod\0path\0c|b\0major\0minor\0mode\0uid\0gid, the parent resolved in the root */
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", field(r, 1));
            char *slash = strrchr(dir, '/');
            if (!slash || !slash[1]) die("mknod", field(r, 1), EINVAL);
            *slash = 0;
            const char *base = slash + 1;
            int dfd = open_in_root(rootfd, *dir ? dir : "/", 1);
            if (dfd < 0) die("mkdir", dir, errno);
            mode_t perm = strtoul(field(r, 5), NULL, 8) & 07777;
            dev_t dev = makedev(strtoul(field(r, 3), NULL, 10), strtoul(field(r, 4), NULL, 10));
            if (mknodat(dfd, base, (field(r, 2)[0] == 'b' ? S_IFBLK : S_IFCHR) | perm, dev) == 0) {
                if (fchownat(dfd, base, strtoul(field(r, 6), NULL, 10), strtoul(field(r, 7), NULL, 10),
                             AT_SYMLINK_NOFOLLOW) < 0 || fchmodat(dfd, base, perm, 0) < 0) /* no umask */
                    die("mknod", field(r, 1), errno);
            } else if (errno != EEXIST) {
                die("mknod", field(r, 1), errno);
            }
            close(dfd);
        } else if (!strcmp(kind, "setro")) {
            if (setattr(AT_FDCWD, field(r, 1), 0, MOUNT_ATTR_RDONLY) < 0) die("readonly", field(r, 1), errno);
        } else if (!strcmp(kind, "rootro")) {
            if (setattr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY) < 0) die("readonly", "/", errno);
        }
    }
    } /* !exec_root */

    int pty_slave = -1; /* exec mode: made the controlling tty by the final process */
    if (io->tty) {
        int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        int unlock = 0, n;
        if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) die("pty", NULL, errno);
        char name[64];
        snprintf(name, sizeof name, "/dev/pts/%d", n);
        int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) die("pty", name, errno);
        const char *cs = get("console_size");
        if (cs) {
            struct winsize ws = {0};
            sscanf(cs, "%hu %hu", &ws.ws_row, &ws.ws_col);
            ioctl(m, TIOCSWINSZ, &ws);
        }
        if (fchown(s, (uid_t)get_ll("uid", 0), (gid_t)-1) < 0) { /* best effort */ }
        if (exec_root || io->pidjoin >= 0) {
            pty_slave = s;
        } else {
            if (ioctl(s, TIOCSCTTY, 0) < 0) die("pty-ctty", name, errno);
            if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0) die("stdio", NULL, errno);
            if (s > 2) close(s);
        }
        if (send_fd(io->sock, m) < 0) die("pty-send", NULL, errno);
        close(m);
    }

    const char *hn = get("hostname"), *dn = get("domainname");
    if (hn && sethostname(hn, strlen(hn)) < 0) die("sethostname", hn, errno);
    if (dn && setdomainname(dn, strlen(dn)) < 0) die("setdomainname", dn, errno);

    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "rlimit")) continue;
        int res; long long soft, hard;
        if (sscanf(recs[i].data, "%d %lld %lld", &res, &soft, &hard) != 3) die("rlimit", recs[i].data, EINVAL);
        struct rlimit rl = { soft < 0 ? RLIM_INFINITY : (rlim_t)soft, hard < 0 ? RLIM_INFINITY : (rlim_t)hard };
        if (setrlimit(res, &rl) < 0) die("rlimit", recs[i].data, errno);
    }

    const char *cwd = get("cwd");
    if (!cwd) cwd = "/";
    if (chdir(cwd) < 0) die("chdir", cwd, errno);

    /* argv and env */
    int nargs = count("arg"), nenv = count("env"), init = get("init") != NULL;
    char **argv = calloc(nargs + 3, sizeof(char *)), **envp = calloc(nenv + 1, sizeof(char *));
    int a = 0, e = 0;
    if (init) { argv[a++] = (char *)get("init"); argv[a++] = "--"; }
    for (int i = 0; i < nrecs; i++) {
        if (!strcmp(recs[i].key, "arg")) argv[a++] = recs[i].data;
        else if (!strcmp(recs[i].key, "env")) envp[e++] = recs[i].data;
    }
    if (nargs == 0) die("exec", "no command", EINVAL);

    int nnp = get_ll("nnp", 0);
    if (!nnp) load_seccomp(); /* needs CAP_SYS_ADMIN without no_new_privs: before dropping caps */

    const char *capv = get("caps");
    if (capv) {
        unsigned long long caps = strtoull(capv, NULL, 16);
        for (int c = 0; c <= io->cap_last; c++)
            if (!(caps & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                die("capbset", NULL, errno);
    }

    /* credentials */
    uid_t uid = get_ll("uid", 0);
    gid_t gid = get_ll("gid", 0);
    gid_t groups[256];
    int ng = 0;
    const char *gs = get("groups");
    if (gs) {
        char *end;
        while (*gs && ng < 256) {
            groups[ng++] = strtoul(gs, &end, 10);
            if (end == gs) break;
            gs = end;
        }
    }
    if (setgroups(ng, groups) < 0) die("setgroups", NULL, errno);
    if (setresgid(gid, gid, gid) < 0) die("setgid", NULL, errno);
    if (setresuid(uid, uid, uid) < 0) die("setuid", NULL, errno);

    if (capv) {
        unsigned long long caps = strtoull(capv, NULL, 16);
        if (uid != 0) caps = 0; /* like Docker: non-root users get empty effective/permitted sets */
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct cur[2];
        if (syscall(SYS_capget, &h, cur) == 0) /* cannot gain what we lack (e.g. privileged) */
            caps &= ((unsigned long long)cur[1].permitted << 32) | cur[0].permitted;
        struct __user_cap_data_struct d[2] = {
            { (uint32_t)caps, (uint32_t)caps, 0 }, { (uint32_t)(caps >> 32), (uint32_t)(caps >> 32), 0 } };
        if (syscall(SYS_capset, &h, d) < 0) die("capset", NULL, errno);
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    }
    if (nnp) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs", NULL, errno);
        load_seccomp();
    }

    int err = 0;
    const char *arg0 = argv[init ? 2 : 0];
    char *exe = lookup(arg0, envp, &err);
    if (!exe) die("lookup", arg0, err);
    if (exec_root || io->pidjoin >= 0) {
        /* Confined (root, credentials, capabilities, no_new_privs, seccomp, non-dumpable): only
         * now may a process appear in the container's pid namespace. CLONE_PARENT makes it the
         * monitor's child, so the monitor reaps it and gets its exit status. */
        pid_t f = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
        if (f < 0) die("clone", "exec process", errno);
        if (f == 0) {
            close(io->pidw);
            if (setsid() < 0) die("setsid", NULL, errno);
            if (pty_slave >= 0) {
                if (ioctl(pty_slave, TIOCSCTTY, 0) < 0) die("pty-ctty", NULL, errno);
                if (dup2(pty_slave, 0) < 0 || dup2(pty_slave, 1) < 0 || dup2(pty_slave, 2) < 0)
                    die("stdio", NULL, errno);
                if (pty_slave > 2) close(pty_slave);
            }
            if (init) {
                execve(argv[0], argv, envp);
                die("exec-init", argv[0], errno);
            }
            execve(exe, argv, envp);
            die("exec", exe, errno);
        }
        int32_t v = f;
        if (write(io->pidw, &v, sizeof v) != (ssize_t)sizeof v) {
            int saved = errno;
            kill(f, SIGKILL);
            die("exec-pid", NULL, saved);
        }
        _exit(0);
    }
    if (init) {
        execve(argv[0], argv, envp);
        die("exec-init", argv[0], errno);
    }
    execve(exe, argv, envp);
    die("exec", exe, errno);
}

/* ---------------------------------------------------------------- monitor */
static int logfd = -1;
static const char *log_path;
static long long log_max_size, log_max_files, log_size;

static void log_rotate(void)
{
    if (log_max_files <= 1) {
        if (ftruncate(logfd, 0) < 0) { /* ignore */ }
        log_size = 0;
        return;
    }
    char src[4096], dst[4096];
    for (long long i = log_max_files - 1; i >= 1; i--) {
        if (i == 1) snprintf(src, sizeof src, "%s", log_path);
        else snprintf(src, sizeof src, "%s.%lld", log_path, i - 1);
        snprintf(dst, sizeof dst, "%s.%lld", log_path, i);
        rename(src, dst);
    }
    close(logfd);
    logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    log_size = 0;
}

static void log_write(int stream, const char *buf, size_t n)
{
    if (logfd < 0) return;
    if (log_max_size > 0 && log_size > 0 && log_size + 16 + (long long)n > log_max_size) log_rotate();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
    unsigned char h[16] = { (unsigned char)stream, 0, 0, 0,
        n >> 24, n >> 16, n >> 8, n,
        t >> 56, t >> 48, t >> 40, t >> 32, t >> 24, t >> 16, t >> 8, t };
    struct iovec iov[2] = { { h, 16 }, { (void *)buf, n } };
    size_t total = 16 + n, done = 0;
    while (done < total) {
        ssize_t w = writev(logfd, iov, 2);
        if (w < 0) { if (errno == EINTR) continue; return; }
        done += w;
        /* partial write: advance the iovecs */
        size_t k = w;
        for (int i = 0; i < 2; i++) {
            size_t take = k < iov[i].iov_len ? k : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            k -= take;
        }
    }
    log_size += total;
}

/* ------------------------------------------------ json-file log (Docker's on-disk format)
 * With the spec key json_log_path, the monitor also writes the container's output as Docker's
 * json-file driver does: one object a line {"log":...,"stream":...,"time":...}, a line longer
 * than 16 KiB split into partial records (no trailing \n), strings escaped as moby's jsonlog
 * (\" \\ \n \r, other control bytes and < > & as \u00XX, U+2028/9 escaped, invalid UTF-8 as
 * \ufffd), time RFC 3339 with Go's RFC3339Nano (trailing zeros trimmed). Rotation as Docker:
 * before a write, a file at or over json_log_max_size is renamed .1 ... .N-1 (or truncated
 * when json_log_max_files is 1). */
#define JLOG_BUF 16384
static int jlogfd = -1;
static const char *jlog_path;
static long long jlog_max_size, jlog_max_files, jlog_size;
static char jlog_pend[3][JLOG_BUF];
static size_t jlog_plen[3];
static struct timespec jlog_ts[3];
static char *jlog_out;
static size_t jlog_cap;

static int jlog_compress;

/* compress=true: the rotated file src becomes src.gz (gzip -n of the host, waited for, so the
 * next rotation finds it done), then src is removed; on failure src stays (readers read both) */
static void jlog_gzip(const char *src)
{
    char dst[4200], tmp[4200];
    snprintf(dst, sizeof dst, "%s.gz", src);
    snprintf(tmp, sizeof tmp, "%s.gz.tmp", src);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0) { close(in); return; }
    pid_t p = fork();
    if (p == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0) _exit(127);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        char *argv[] = { "gzip", "-c", "-n", NULL }, *envp[] = { NULL };
        execve("/usr/bin/gzip", argv, envp);
        execve("/bin/gzip", argv, envp);
        _exit(127);
    }
    close(in);
    close(out);
    int st = 1;
    if (p > 0) while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
    if (p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && rename(tmp, dst) == 0) unlink(src);
    else unlink(tmp);
}

static void jlog_rotate(void)
{
    if (jlog_max_files <= 1) {
        if (ftruncate(jlogfd, 0) < 0) { /* ignore */ }
        jlog_size = 0;
        return;
    }
    char src[4096], dst[4096];
    const char *ext = jlog_compress ? ".gz" : "";
    for (long long i = jlog_max_files - 1; i >= 1; i--) {
        if (i == 1) snprintf(src, sizeof src, "%s", jlog_path);
        else snprintf(src, sizeof src, "%s.%lld%s", jlog_path, i - 1, ext);
        snprintf(dst, sizeof dst, "%s.%lld%s", jlog_path, i, i == 1 ? "" : ext);
        rename(src, dst);
    }
    int fd = open(jlog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    close(jlogfd);
    jlogfd = fd;
    jlog_size = 0;
    if (jlog_compress) {
        snprintf(src, sizeof src, "%s.1", jlog_path);
        jlog_gzip(src);
    }
}

/* length of the valid UTF-8 sequence at s (Go's utf8.DecodeRune rules), 0 if invalid */
static size_t jlog_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) { len = 3; if (b == 0xe0) lo = 0xa0; else if (b == 0xed) hi = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { len = 4; if (b == 0xf0) lo = 0x90; else if (b == 0xf4) hi = 0x8f; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j < len; j++)
        if (s[j] < 0x80 || s[j] > 0xbf) return 0;
    return len;
}

/* per byte: 0 copied as is, else the length of its escape (2 or 6) in jlog_esc; 0x80 and up: 1
 * (UTF-8, checked by jlog_utf8_len) */
static unsigned char jlog_cls[256];
static char jlog_esc[128][8];
static void jlog_tables(void)
{
    static const char hex[] = "0123456789abcdef";
    for (int b = 0; b < 256; b++) {
        if (b >= 0x80) { jlog_cls[b] = 1; continue; }
        if (b >= 0x20 && b != '\\' && b != '"' && b != '<' && b != '>' && b != '&') continue;
        char *e = jlog_esc[b];
        e[0] = '\\';
        if (b == '\\' || b == '"') { e[1] = (char)b; jlog_cls[b] = 2; }
        else if (b == '\n') { e[1] = 'n'; jlog_cls[b] = 2; }
        else if (b == '\r') { e[1] = 'r'; jlog_cls[b] = 2; }
        else { memcpy(e + 1, "u00", 3); e[4] = hex[b >> 4]; e[5] = hex[b & 15]; jlog_cls[b] = 6; }
    }
}

/* the JSON string of s[0..n) into o (room for 6n + 4 bytes: an escape is stored as 8); returns its
 * length. Runs of plain bytes are found 8 at a time and copied whole, escapes come from a table
 * (106 MB of NULs: 0.67 -> 0.18 s; plain text 0.27 -> 0.07 s) */
static size_t jlog_escape(char *o, const unsigned char *s, size_t n)
{
    static int tables;
    if (!tables) { jlog_tables(); tables = 1; }
    size_t k = 0;
    o[k++] = '"';
    for (size_t i = 0; i < n;) {
        size_t j = i;
        /* 8 bytes at a time while none needs a look: < 0x20, >= 0x80, \\ " & < > */
        for (; j + 8 <= n; j += 8) {
            uint64_t x;
            memcpy(&x, s + j, 8);
            const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
            uint64_t q = x ^ (0x5c * ones), a = (x | 0x04 * ones) ^ (0x26 * ones), c = (x | 0x02 * ones) ^ (0x3e * ones);
            if ((((x - 0x20 * ones) & ~x) | x | ((q - ones) & ~q) | ((a - ones) & ~a) | ((c - ones) & ~c)) & high)
                break;
        }
        while (j < n && !jlog_cls[s[j]]) j++;
        if (j > i) { memcpy(o + k, s + i, j - i); k += j - i; i = j; if (i == n) break; }
        unsigned char b = s[i];
        if (b < 0x80) {
            /* a run of escaped bytes (NULs, control bytes): 8-byte stores */
            do {
                memcpy(o + k, jlog_esc[b], 8);
                k += jlog_cls[b];
                i++;
            } while (i < n && (b = s[i]) < 0x80 && jlog_cls[b]);
            continue;
        }
        size_t len = jlog_utf8_len(s + i, n - i);
        if (!len) { memcpy(o + k, "\\ufffd", 6); k += 6; i++; continue; }
        if (len == 3 && b == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            memcpy(o + k, "\\u202", 5); k += 5;
            o[k++] = s[i + 2] == 0xa8 ? '8' : '9';
        } else {
            memcpy(o + k, s + i, len); k += len;
        }
        i += len;
    }
    o[k++] = '"';
    return k;
}

/* Go's time.RFC3339Nano of a UTC time: fraction without trailing zeros, none if 0 */
static size_t jlog_time(char *o, const struct timespec *ts)
{
    static time_t sec = -1;
    static char head[32];
    static size_t head_len;
    if (ts->tv_sec != sec) { /* the date part changes once a second */
        struct tm tm;
        gmtime_r(&ts->tv_sec, &tm);
        head_len = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
        sec = ts->tv_sec;
    }
    memcpy(o, head, head_len);
    size_t k = head_len;
    long ns = ts->tv_nsec;
    if (ns > 0 && ns < 1000000000L) {
        char f[10];
        f[0] = '.';
        for (int i = 9; i >= 1; i--) { f[i] = (char)('0' + ns % 10); ns /= 10; }
        int e = 10;
        while (f[e - 1] == '0') e--;
        memcpy(o + k, f, e);
        k += e;
    }
    o[k++] = 'Z';
    return k;
}

/* ------------------------------------------------ syslog driver (Docker's formats)
 * With the spec key syslog_proto, the monitor sends each line of output (newline removed, 16 KiB
 * partial lines as their own messages, as Docker) as one datagram: "unix" to syslog_path,
 * "udp4"/"udp6" to syslog_host:syslog_port. Formats as Docker's syslog driver (srslog):
 * ""            <PRI>Mmm _d hh:mm:ss TAG[PID]: MSG
 * rfc3164       <PRI>Mmm _d hh:mm:ss HOST TAG[PID]: MSG
 * rfc5424       <PRI>1 RFC3339 HOST TAG PID TAG - MSG
 * rfc5424micro  the same with microseconds
 * PRI = facility * 8 + severity (stdout info 6, stderr err 3). A message that cannot be sent
 * (no receiver) is dropped, as Docker logs and drops it; the socket is connected again once. */
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
static int slogfd = -1;
static const char *slog_tag, *slog_format;
static long long slog_facility = 3;
static char slog_host[256];
static struct sockaddr_storage slog_addr;
static socklen_t slog_addrlen;

static int slog_connect(void)
{
    if (slogfd >= 0) close(slogfd);
    slogfd = socket(slog_addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (slogfd < 0) return -1;
    if (connect(slogfd, (struct sockaddr *)&slog_addr, slog_addrlen) < 0) {
        int e = errno;
        close(slogfd);
        slogfd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

/* RFC 3339 local time with a UTC offset ("Z" when 0), micro: 6 fraction digits, zeros trimmed */
static size_t slog_rfc3339(char *o, const struct timespec *ts, int micro)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    size_t k = strftime(o, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (micro && ts->tv_nsec / 1000) {
        char f[24];
        snprintf(f, sizeof f, ".%06ld", (long)(ts->tv_nsec / 1000));
        int e = 7;
        while (f[e - 1] == '0') e--;
        memcpy(o + k, f, e);
        k += e;
    }
    long off = tm.tm_gmtoff / 60;
    if (!off) o[k++] = 'Z';
    else k += snprintf(o + k, 16, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
    o[k] = 0;
    return k;
}

static void slog_emit(int stream, const char *buf, size_t n, const struct timespec *ts)
{
    if (n && buf[n - 1] == '\n') n--;
    static char msg[JLOG_BUF + 1024];
    int pri = (int)slog_facility * 8 + (stream == 2 ? 3 : 6);
    char t[64];
    int k;
    if (slog_format[0] == 'r' && !strncmp(slog_format, "rfc5424", 7)) {
        slog_rfc3339(t, ts, !strcmp(slog_format, "rfc5424micro"));
        k = snprintf(msg, 1024, "<%d>1 %s %s %s %d %s - ", pri, t, slog_host, slog_tag, (int)getpid(), slog_tag);
    } else {
        struct tm tm;
        localtime_r(&ts->tv_sec, &tm);
        strftime(t, sizeof t, "%b %e %H:%M:%S", &tm);
        if (!strcmp(slog_format, "rfc3164"))
            k = snprintf(msg, 1024, "<%d>%s %s %s[%d]: ", pri, t, slog_host, slog_tag, (int)getpid());
        else
            k = snprintf(msg, 1024, "<%d>%s %s[%d]: ", pri, t, slog_tag, (int)getpid());
    }
    if (k < 0 || k >= 1024) return;
    memcpy(msg + k, buf, n);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (slogfd >= 0 && send(slogfd, msg, k + n, MSG_NOSIGNAL) >= 0) return;
        if (attempt == 0 && slog_connect() < 0) return; /* the receiver came back: once more */
    }
}

/* sets up the syslog driver if the spec names one; -1 (errno set) if the receiver is unreachable */
static int slog_open(void)
{
    const char *proto = get("syslog_proto");
    if (!proto) return 0;
    slog_tag = get("syslog_tag") ? get("syslog_tag") : "";
    slog_format = get("syslog_format") ? get("syslog_format") : "";
    slog_facility = get_ll("syslog_facility", 3);
    if (gethostname(slog_host, sizeof slog_host - 1) < 0) strcpy(slog_host, "localhost");
    memset(&slog_addr, 0, sizeof slog_addr);
    if (!strcmp(proto, "unix")) {
        struct sockaddr_un *u = (struct sockaddr_un *)&slog_addr;
        const char *path = get("syslog_path");
        if (!path || strlen(path) >= sizeof u->sun_path) { errno = EINVAL; return -1; }
        u->sun_family = AF_UNIX;
        strcpy(u->sun_path, path);
        slog_addrlen = sizeof *u;
    } else if (!strcmp(proto, "udp4")) {
        struct sockaddr_in *a = (struct sockaddr_in *)&slog_addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)get_ll("syslog_port", 514));
        if (!get("syslog_host") || inet_pton(AF_INET, get("syslog_host"), &a->sin_addr) != 1) { errno = EINVAL; return -1; }
        slog_addrlen = sizeof *a;
    } else if (!strcmp(proto, "udp6")) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&slog_addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)get_ll("syslog_port", 514));
        if (!get("syslog_host") || inet_pton(AF_INET6, get("syslog_host"), &a->sin6_addr) != 1) { errno = EINVAL; return -1; }
        slog_addrlen = sizeof *a;
    } else {
        errno = EINVAL;
        return -1;
    }
    return slog_connect();
}

/* the records built from one read of the output: one write (readers stop at the last newline) */
static size_t jlog_len;
static void jlog_write_out(void)
{
    for (size_t done = 0; jlogfd >= 0 && done < jlog_len;) {
        ssize_t w = write(jlogfd, jlog_out + done, jlog_len - done);
        if (w < 0) { if (errno == EINTR) continue; break; }
        done += w;
    }
    jlog_len = 0;
}

static void jlog_emit(int stream, const char *buf, size_t n, const struct timespec *ts)
{
    if (slog_tag) { slog_emit(stream, buf, n, ts); return; }
    if (jlog_max_size > 0 && jlog_size >= jlog_max_size) { jlog_write_out(); jlog_rotate(); }
    if (jlog_len > (1 << 20)) jlog_write_out();
    size_t need = jlog_len + 6 * n + 128;
    if (need > jlog_cap) {
        char *p = realloc(jlog_out, need * 2);
        if (!p) return;
        jlog_out = p;
        jlog_cap = need * 2;
    }
    char *o = jlog_out + jlog_len;
    size_t k = 0;
    memcpy(o, "{\"log\":", 7); k = 7;
    k += jlog_escape(o + k, (const unsigned char *)buf, n);
    const char *st = stream == 2 ? ",\"stream\":\"stderr\",\"time\":\"" : ",\"stream\":\"stdout\",\"time\":\"";
    size_t sl = strlen(st);
    memcpy(o + k, st, sl); k += sl;
    k += jlog_time(o + k, ts);
    o[k++] = '"'; o[k++] = '}'; o[k++] = '\n';
    jlog_len += k;
    jlog_size += k;
}

/* output of stream (1 stdout, 2 stderr): complete lines are records, 16 KiB without a newline
 * a partial record; the rest waits for more (jlog_flush at the end) */
static void jlog_feed(int stream, const char *buf, size_t n)
{
    if ((jlogfd < 0 && !slog_tag) || stream < 1 || stream > 2) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char *p = jlog_pend[stream];
    size_t *pl = &jlog_plen[stream];
    while (n > 0) {
        if (*pl == 0) jlog_ts[stream] = now;
        size_t take = JLOG_BUF - *pl;
        if (n < take) take = n;
        const char *nl = memchr(buf, '\n', take);
        if (nl) take = (size_t)(nl - buf) + 1;
        memcpy(p + *pl, buf, take);
        *pl += take; buf += take; n -= take;
        if (nl || *pl == JLOG_BUF) {
            jlog_emit(stream, p, *pl, &jlog_ts[stream]);
            *pl = 0;
        }
    }
    jlog_write_out();
}

/* the output ended: what is left of a line is a last partial record */
static void jlog_flush(void)
{
    for (int s = 1; s <= 2; s++)
        if (jlog_plen[s]) { jlog_emit(s, jlog_pend[s], jlog_plen[s], &jlog_ts[s]); jlog_plen[s] = 0; }
    jlog_write_out();
}

/* opens the json-file log if the spec names one; -1 (errno set) if it cannot be opened */
static int jlog_open(void)
{
    jlog_path = get("json_log_path");
    if (!jlog_path) return 0;
    jlog_max_size = get_ll("json_log_max_size", 0);
    jlog_max_files = get_ll("json_log_max_files", 1);
    jlog_compress = get_ll("json_log_compress", 0) != 0;
    jlogfd = open(jlog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (jlogfd < 0) return -1;
    struct stat jst;
    fstat(jlogfd, &jst);
    jlog_size = jst.st_size;
    return 0;
}

/* Atomic against a crash of the daemon or of this shim (the page cache outlives both), not
 * fsynced: these files (pid, exit) live in the state dir under the exec root, a tmpfs
 * (/run) that a power loss empties together with every container they describe. The
 * durable record of an exit is the daemon's container record. An fsync here cost ~5 ms per
 * start and per exit on ext4, and stalled the journal for the daemon's next writes. */
static int write_file_atomic(const char *path, const char *content)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t n = strlen(content);
    if (write(fd, content, n) != (ssize_t)n) { close(fd); return -1; }
    close(fd);
    return rename(tmp, path);
}

/* field 22 of /proc/PID/stat (clock ticks after boot); 0 if unknown */
static unsigned long long proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p += 2; /* field 3 */
    for (int i = 3; i < 22 && p; i++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

#define BUFSZ (128 * 1024)
static char iobuf[BUFSZ];

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s SPECFILE\n", argv[0]); return 2; }
    if (parse_spec(argv[1]) < 0) { status_error(errno, "spec", argv[1]); return 1; }
    /* nothing the daemon had open may leak into the monitor or the container */
    syscall(SYS_close_range, 3U, ~0U, 0U);

    /* The daemon's child forks the monitor and exits (the monitor is reparented). An exec
     * whose daemon reaps the monitor itself ("monitor_child") saves that fork: the daemon's
     * child is the monitor (not a group leader, so setsid works as for a forked one). */
    if (!(get("exec_root") && get_ll("monitor_child", 0))) {
        pid_t p = fork();
        if (p < 0) { status_error(errno, "fork", NULL); return 1; }
        if (p > 0) _exit(0); /* the daemon's child exits: the monitor is reparented */
    }

    setsid();
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    const char *state_dir = get("state_dir"), *exit_path = get("exit_path");
    log_path = get("log_path");
    log_max_size = get_ll("log_max_size", 0);
    log_max_files = get_ll("log_max_files", 1);
    int tty = get_ll("tty", 0), open_stdin = get("stdin") != NULL, stdin_once = get_ll("stdin_once", 0);
    if (!state_dir || !exit_path || !get("rootfs") || !log_path) { status_error(EINVAL, "spec", "missing keys"); return 1; }

    logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (logfd < 0) { status_error(errno, "log", log_path); return 1; }
    struct stat lst;
    fstat(logfd, &lst);
    log_size = lst.st_size;
    if (jlog_open() < 0) { status_error(errno, "log", jlog_path); return 1; }
    if (slog_open() < 0) { status_error(errno, "syslog", get("syslog_path") ? get("syslog_path") : get("syslog_host")); return 1; }

    char path[4096];
    int stdin_fifo = -1, ctl = -1;
    if (open_stdin) {
        snprintf(path, sizeof path, "%s/stdin", state_dir);
        if ((mkfifo(path, 0600) < 0 && errno != EEXIST) ||
            (stdin_fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) { status_error(errno, "stdin", path); return 1; }
    }
    if (tty) {
        snprintf(path, sizeof path, "%s/control", state_dir);
        if ((mkfifo(path, 0600) < 0 && errno != EEXIST) ||
            (ctl = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) { status_error(errno, "control", path); return 1; }
    }

    /* run mode, namespaces of other containers: "setns" records are "<CLONE_NEW* flag>\0<path>".
     * The monitor never enters a container: it opens them and the child joins them, except the
     * pid namespace, which setns() only sets for the children (the monitor stays in its own). */
    int exec_mode = get("exec_root") != NULL;
    int joinfd[16], joinflag[16], njoin = 0, pidjoin = -1;
    for (int i = 0; i < nrecs; i++) {
        if (strcmp(recs[i].key, "setns")) continue;
        if (exec_mode || njoin == 16) { status_error(EINVAL, "spec", "setns"); return 1; }
        int flag = strtol(field(&recs[i], 0), NULL, 0);
        int fd = open(field(&recs[i], 1), O_RDONLY | O_CLOEXEC);
        if (fd < 0) { status_error(errno, "setns", field(&recs[i], 1)); return 1; }
        if (flag == CLONE_NEWPID && !get("uid_map") && !get("userns_join")
            && proc_pidns_supported(fd)) {
            pidjoin = fd; /* joined by the child for its own child (see child_main) */
        } else if (flag == CLONE_NEWPID || get("uid_map") || get("userns_join")) { /* userns: the child could not */
            if (setns(fd, flag) < 0) { status_error(errno, "setns", field(&recs[i], 1)); return 1; }
            close(fd);
        } else {
            joinfd[njoin] = fd;
            joinflag[njoin++] = flag;
        }
    }

    int cap_last = 40;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) { if (fscanf(f, "%d", &cap_last) != 1) cap_last = 40; fclose(f); }

    int errp[2], inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, errs[2] = { -1, -1 }, sv[2] = { -1, -1 };
    int pidp[2] = { -1, -1 };
    int two_step = exec_mode || pidjoin >= 0; /* an intermediate forks the process (CLONE_PARENT) */
    if (pipe2(errp, O_CLOEXEC) < 0 || (two_step && pipe2(pidp, O_CLOEXEC) < 0)) {
        status_error(errno, "pipe", NULL);
        return 1;
    }
    if (open_stdin && !tty) {
        if (pipe2(inp, O_CLOEXEC) < 0) { status_error(errno, "pipe", NULL); return 1; }
        fcntl(inp[1], F_SETPIPE_SZ, 1 << 20);
    }
    else if ((inp[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) { status_error(errno, "devnull", NULL); return 1; }
    if (tty) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) { status_error(errno, "socketpair", NULL); return 1; }
    } else {
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errs, O_CLOEXEC) < 0) { status_error(errno, "pipe", NULL); return 1; }
        fcntl(outp[0], F_SETPIPE_SZ, 1 << 20);
        fcntl(errs[0], F_SETPIPE_SZ, 1 << 20);
    }

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

    long flags = exec_mode ? 0 : get_ll("clone_flags", 0);
    fflush(stdout);
    /* run mode: the container's first process; exec mode: the intermediate (see the top) */
    if (!get("exec_root") && get("uid_map") && pipe2(userns_sync, O_CLOEXEC) < 0) { status_error(errno, "pipe", NULL); return 1; }
    pid_t cpid = clone_child(flags, !(!get("exec_root") && get("uid_map")));
    if (cpid < 0) { status_error(errno, "clone", NULL); return 1; }
    if (cpid == 0) {
        errfd = errp[1];
        struct child_io io = { inp[0], outp[1], errs[1], sv[1], tty, cap_last, pidp[1], pidjoin, joinfd, joinflag, njoin };
        child_main(&io);
        _exit(127);
    }
    for (int i = 0; i < njoin; i++) close(joinfd[i]);
    if (pidjoin >= 0) close(pidjoin);
    close(errp[1]);
    if (userns_sync[0] >= 0) {
        const char *stage = "userns";
        close(userns_sync[0]);
        if (userns_release(cpid, &stage) < 0) {
            int saved = errno;
            kill(cpid, SIGKILL);
            waitpid(cpid, NULL, 0);
            status_error(saved, stage, NULL);
            return 1;
        }
    }
    if (two_step) {
        /* the intermediate reports the pid of the exec'd process (our child by CLONE_PARENT)
         * and exits; nothing to read means it failed (its error is on errp) */
        pid_t ipid = cpid;
        int32_t v = 0;
        size_t got = 0;
        close(pidp[1]);
        while (got < sizeof v) {
            ssize_t n = read(pidp[0], (char *)&v + got, sizeof v - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += n;
        }
        close(pidp[0]);
        cpid = got == sizeof v ? (pid_t)v : -1;
        while (waitpid(ipid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (inp[0] >= 0) close(inp[0]);
    if (outp[1] >= 0) close(outp[1]);
    if (errs[1] >= 0) close(errs[1]);
    if (sv[1] >= 0) close(sv[1]);

    /* wait for exec (EOF on the CLOEXEC pipe) or an error report */
    char ebuf[1100];
    size_t elen = 0;
    for (;;) {
        ssize_t n = read(errp[0], ebuf + elen, sizeof ebuf - 1 - elen);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        elen += n;
    }
    close(errp[0]);
    if (elen > 0) {
        ebuf[elen] = 0;
        if (cpid > 0) waitpid(cpid, NULL, 0);
        printf("error %s\n", ebuf);
        fflush(stdout);
        return 1;
    }
    if (cpid <= 0) { status_error(EIO, "exec-helper", NULL); return 1; }
    int out_fd = outp[0], err_fd = errs[0], in_w = inp[1];
    if (tty) {
        out_fd = recv_fd(sv[0]);
        close(sv[0]);
        if (out_fd < 0) { kill(cpid, SIGKILL); waitpid(cpid, NULL, 0); status_error(EIO, "pty-recv", NULL); return 1; }
        if (open_stdin) in_w = out_fd;
    }
    if (in_w >= 0) fcntl(in_w, F_SETFL, O_NONBLOCK);

    /* the start time lets the daemon tell the container's process from a recycled pid if the
     * monitor is killed (a --pid host container may kill it) and it adopts the process */
    char line[96];
    snprintf(path, sizeof path, "%s/pid", state_dir);
    snprintf(line, sizeof line, "%d %d %llu\n", cpid, getpid(), proc_starttime(cpid));
    write_file_atomic(path, line);
    printf("ok %d %d\n", cpid, getpid());
    fflush(stdout);
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0); dup2(nul, 1); dup2(nul, 2);
    if (nul > 2) close(nul);

    /* monitor loop */
    int exited = 0, status = 0;
    struct timespec fin = {0};
    static char inbuf[BUFSZ];
    size_t in_len = 0, in_off = 0;
    int stdin_detached = 0; /* the writer that closes next detached: keep stdin open */
    for (;;) {
        struct pollfd pf[6];
        int tag[6], np = 0;
        pf[np] = (struct pollfd){ sfd, POLLIN, 0 }; tag[np++] = 0;
        if (out_fd >= 0) { pf[np] = (struct pollfd){ out_fd, POLLIN, 0 }; tag[np++] = 1; }
        if (err_fd >= 0) { pf[np] = (struct pollfd){ err_fd, POLLIN, 0 }; tag[np++] = 2; }
        if (ctl >= 0) { pf[np] = (struct pollfd){ ctl, POLLIN, 0 }; tag[np++] = 5; } /* before stdin */
        if (stdin_fifo >= 0 && in_len == 0) { pf[np] = (struct pollfd){ stdin_fifo, POLLIN, 0 }; tag[np++] = 3; }
        if (in_w >= 0 && in_len > 0) { pf[np] = (struct pollfd){ in_w, POLLOUT, 0 }; tag[np++] = 4; }
        if (exited && out_fd < 0 && err_fd < 0) break;
        int r = poll(pf, np, exited ? 2000 : -1);
        if (r < 0) { if (errno == EINTR) continue; break; }
        if (r == 0) break; /* exited and output is quiet (descendants outside our pid ns keep pipes) */
        for (int i = 0; i < np; i++) {
            if (!pf[i].revents) continue;
            switch (tag[i]) {
            case 0: {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) > 0) {}
                int st;
                pid_t w;
                while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                    if (w == cpid) { exited = 1; status = st; clock_gettime(CLOCK_REALTIME, &fin); }
                break;
            }
            case 1: case 2: {
                int *fdp = tag[i] == 1 ? &out_fd : &err_fd;
                /* with rotation, keep records well under max-size so a burst still rotates */
                size_t want = BUFSZ;
                if (log_max_size > 0 && (long long)want > log_max_size / 4)
                    want = log_max_size / 4 > 1024 ? (size_t)(log_max_size / 4) : 1024;
                ssize_t n = read(*fdp, iobuf, want);
                if (n > 0) { log_write(tag[i], iobuf, n); jlog_feed(tag[i], iobuf, n); }
                else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                    if (*fdp == in_w) in_w = -1;
                    close(*fdp);
                    *fdp = -1;
                }
                break;
            }
            case 3: {
                ssize_t n = read(stdin_fifo, inbuf, sizeof inbuf);
                if (n > 0) { in_len = n; in_off = 0; }
                else if (n == 0) { /* the writer closed */
                    close(stdin_fifo);
                    stdin_fifo = -1;
                    if (stdin_once && !stdin_detached && !tty) { /* EOF for the process */
                        if (in_w >= 0) { close(in_w); in_w = -1; }
                    } else if (stdin_once && !stdin_detached && get("exec_root")) {
                        /* the client of an exec's terminal left: hang up, as a closing terminal
                         * does (the shell's foreground job gets SIGHUP when the shell exits) */
                        if (!exited) kill(-cpid, SIGHUP); /* never a reaped (maybe reused) pid */
                    } else { /* open again for the next writer (attach). A container's TTY stays
                              * open when a client leaves or detaches, as in Docker */
                        stdin_detached = 0;
                        snprintf(path, sizeof path, "%s/stdin", state_dir);
                        stdin_fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
                    }
                }
                break;
            }
            case 4: {
                ssize_t n = write(in_w, inbuf + in_off, in_len - in_off);
                if (n > 0) { in_off += n; if (in_off == in_len) in_len = in_off = 0; }
                else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    in_len = in_off = 0;
                    if (!tty) { close(in_w); in_w = -1; }
                }
                break;
            }
            case 5: {
                char cmd[256];
                ssize_t n = read(ctl, cmd, sizeof cmd - 1);
                if (n <= 0) break;
                cmd[n] = 0;
                for (char *c = cmd, *nl; *c; c = nl ? nl + 1 : c + strlen(c)) { /* one command a line */
                    nl = strchr(c, '\n');
                    struct winsize ws = {0};
                    if (sscanf(c, "resize %hu %hu", &ws.ws_row, &ws.ws_col) == 2 && out_fd >= 0)
                        ioctl(out_fd, TIOCSWINSZ, &ws);
                    else if (!strncmp(c, "detach", 6)) /* a client typed the detach keys */
                        stdin_detached = 1;
                }
                break;
            }
            }
        }
    }
    /* reap anything left (grandchildren reparented to us) */
    while (waitpid(-1, NULL, WNOHANG) > 0) {}

    int code = 0, sig = 0;
    if (WIFEXITED(status)) code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) { sig = WTERMSIG(status); code = 128 + sig; }
    char ex[128];
    snprintf(ex, sizeof ex, "%d %d %lld\n", code, sig, (long long)fin.tv_sec * 1000000000LL + fin.tv_nsec);
    if (logfd >= 0) close(logfd);
    jlog_flush();
    if (jlogfd >= 0) close(jlogfd);
    write_file_atomic(exit_path, ex);
    return 0;
}
