/* Small OS helpers the loop calls with the GIL released: clock, wake-up fd.
 * Which mechanism is used is decided by pyx/engine_features.h. */
#ifndef ENGINE_SYSDEPS_H
#define ENGINE_SYSDEPS_H

#include "engine_features.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#if ENGINE_USE_EVENTFD
#  include <sys/eventfd.h>
#endif
#if defined(HAVE_SENDFILE_LINUX)
#  include <sys/sendfile.h>
#endif
#include <sys/socket.h>

/* Same clock as time.monotonic(), so loop.time() and time.monotonic() agree. */
static inline double eng_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int eng_set_nonblock_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return -errno;
    return 0;
}

/* A non-blocking close-on-exec pipe: fds[0] read end, fds[1] write end. */
static int eng_pipe(int fds[2]) {
#if ENGINE_USE_PIPE2
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
#else
    int rc;
    if (pipe(fds) < 0) return -errno;
    if ((rc = eng_set_nonblock_cloexec(fds[0])) < 0 || (rc = eng_set_nonblock_cloexec(fds[1])) < 0) {
        close(fds[0]); close(fds[1]);
        return rc;
    }
#endif
    return 0;
}

/* Wake-up channel: eventfd where available (one fd for both ends), else a pipe. */
static int eng_wakeup_open(int fds[2]) {
#if ENGINE_USE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -errno;
    fds[0] = fds[1] = fd;
    return 0;
#else
    return eng_pipe(fds);
#endif
}

static void eng_wakeup_send(int wfd) {
#if ENGINE_USE_EVENTFD
    uint64_t one = 1;
    ssize_t r;
    do { r = write(wfd, &one, sizeof one); } while (r < 0 && errno == EINTR);
#else
    char c = 0;
    ssize_t r;
    do { r = write(wfd, &c, 1); } while (r < 0 && errno == EINTR);
#endif
    (void)r;  /* EAGAIN: a wake-up is already pending, which is all we need */
}

static void eng_wakeup_drain(int rfd) {
    char buf[64];
    ssize_t r;
    for (;;) {
        r = read(rfd, buf, sizeof buf);
        if (r > 0 && (size_t)r == sizeof buf) continue;
        if (r < 0 && errno == EINTR) continue;
        break;
    }
}

static void eng_close_wakeup(int fds[2]) {
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0 && fds[1] != fds[0]) close(fds[1]);
    fds[0] = fds[1] = -1;
}

/* MSG_MORE: "more data follows" on one send (Linux); 0 where the platform has no such flag. */
#ifdef MSG_MORE
#  define ENG_MSG_MORE MSG_MORE
#else
#  define ENG_MSG_MORE 0
#endif

/* Up to n bytes of file fd `in` from *off to socket `out`, *off advanced; -1 with errno set
 * (ENOSYS where only the BSD/macOS forms exist: those go through os.sendfile). */
static ssize_t eng_sendfile(int out, int in, int64_t *off, size_t n) {
#if defined(HAVE_SENDFILE_LINUX)
    off_t o = (off_t)*off;
    ssize_t r = sendfile(out, in, &o, n);
    *off = (int64_t)o;
    return r;
#else
    (void)out; (void)in; (void)off; (void)n;
    errno = ENOSYS;
    return -1;
#endif
}

#endif
