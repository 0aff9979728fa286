/* io_uring(7) readiness backend: the poller contract served by poll requests on a ring.
 *
 * Built with the kernel's uapi header (linux/io_uring.h) and raw system calls, not liburing: the
 * wheel then needs no shared library at run time and works wherever the kernel allows io_uring,
 * and the subset used here (setup, enter, register ENABLE_RINGS, POLL_ADD / POLL_REMOVE) is small.
 *
 * Kernel facts this file relies on:
 *  - A POLL_ADD request checks readiness when it is armed and completes at once if the file is
 *    ready. A one-shot request completes once; re-arming it after the loop handled the event gives
 *    level-triggered delivery (an fd still ready completes again at once). A multishot request
 *    (IORING_POLL_ADD_MULTI, edge-triggered unless IORING_POLL_ADD_LEVEL) stays armed and posts a
 *    completion per readiness change, flagged IORING_CQE_F_MORE while it stays armed.
 *    IORING_POLL_ADD_LEVEL does not make a multishot request level-triggered (it reports on
 *    wake-ups only; reported on the io-uring list in 2022), hence the one-shot re-arm.
 *  - A poll request holds a reference to the file, unlike an epoll registration: closing the fd
 *    does not end it, and the file (a socket's FIN) stays alive until the request completes or is
 *    removed. The loop therefore never keeps a registration it is not using
 *    (eng_poller_holds_files), and a removal is submitted at once (one io_uring_enter, as epoll
 *    makes one epoll_ctl), not batched with the next wait.
 *  - Poll requests may complete after a POLL_REMOVE was queued for them (with -ECANCELED, or with
 *    an event that raced it). Every request carries (generation << 32 | fd) as user_data; the
 *    generation is bumped for each new request on an fd, so a completion of an older one is stale
 *    and dropped.
 *  - Regular files and directories poll as always ready instead of failing as under epoll
 *    (EPOLL_CTL_ADD gives EPERM). A new registration is checked with fstat() to keep epoll's answer
 *    (and EBADF for a closed fd) synchronous, as the loop expects from eng_poller_set.
 *  - With IORING_SETUP_SINGLE_ISSUER only one thread may submit, and with DEFER_TASKRUN completions
 *    are posted only while that thread waits in io_uring_enter (GETEVENTS). An asyncio loop may be
 *    created in one thread and run in another, or used again after fork(): the ring is created
 *    disabled (R_DISABLED), enabled by the first thread that submits, and rebuilt (every wanted fd
 *    re-armed) when a different thread or a forked child submits.
 *  - io_uring_enter with IORING_ENTER_EXT_ARG takes the wait's timeout (IORING_FEAT_EXT_ARG, 5.11);
 *    it fails with ETIME on timeout and EINTR when a signal handler runs. IORING_FEAT_NODROP (5.5)
 *    keeps completions that overflow the ring. Kernels without both are not used (epoll instead).
 */
/* Included by poller/poller.h when ENGINE_USE_IO_URING. */
#ifndef ENGINE_POLLER_IO_URING_H
#define ENGINE_POLLER_IO_URING_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/io_uring.h>

#ifndef IORING_SETUP_SUBMIT_ALL
#  define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#  define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#  define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#  define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_FEAT_EXT_ARG
#  define IORING_FEAT_EXT_ARG (1U << 8)
#endif

#define ENG_UR_SQ_ENTRIES   256u
#define ENG_UR_CQ_ENTRIES   4096u
#define ENG_UR_UD_IGNORE    (~(uint64_t)0)   /* user_data of requests whose completion is dropped */

typedef struct eng_ufd {       /* the ring's view of one fd number */
    uint32_t want;             /* the ENG_EV_* mask the loop wants (0: none) */
    uint32_t gen;              /* generation of the newest poll request on this fd */
    uint32_t armed_mask;       /* what the armed request waits for, when armed */
    uint8_t armed;             /* a request of this generation is queued or in the kernel */
    uint8_t rearm;             /* on the re-arm list */
    uint8_t dead;              /* the kernel refused the fd: not re-armed until the next set */
} eng_ufd;

typedef struct eng_uev { int fd; int revents; } eng_uev;

typedef struct eng_uring {
    int ring_fd;
    unsigned setup_flags;      /* the flags the ring was created with */
    unsigned sq_entries, cq_entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len, sqes_len;
    unsigned sq_local;         /* SQEs filled so far (the tail not yet published) */
    int enabled;               /* an R_DISABLED ring is enabled by the first submitting thread */
    pthread_t owner;           /* that thread */
    unsigned owner_fork;       /* eng_ur_forks when it was enabled */
    eng_ufd *fds;
    int nfds;
    int *rearm;                /* fds whose one-shot request completed while still wanted */
    int nrearm, rearm_cap;
    eng_uev *ev;               /* the batch eng_poller_event reads */
    int ev_cap;
} eng_uring;

static unsigned eng_ur_forks = 0;          /* bumped in every forked child */
static int eng_ur_atfork_done = 0;
static void eng_ur_child(void) { eng_ur_forks++; }

static int eng_ur_sys_setup(unsigned entries, struct io_uring_params *prm) {
    return (int)syscall(__NR_io_uring_setup, entries, prm);
}

static int eng_ur_sys_enter(int fd, unsigned submit, unsigned min, unsigned flags, void *arg, size_t argsz) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, arg, argsz);
}

static int eng_ur_sys_register(int fd, unsigned op, void *arg, unsigned n) {
    return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

static void eng_ur_unmap(eng_uring *u) {
    if (u->sqes != NULL && u->sqes != MAP_FAILED) munmap(u->sqes, u->sqes_len);
    if (u->cq_map != NULL && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map) munmap(u->cq_map, u->cq_map_len);
    if (u->sq_map != NULL && u->sq_map != MAP_FAILED) munmap(u->sq_map, u->sq_map_len);
    u->sqes = NULL; u->sq_map = u->cq_map = NULL;
    if (u->ring_fd >= 0) close(u->ring_fd);
    u->ring_fd = -1;
}

/* Create and map a ring (disabled when the kernel has SINGLE_ISSUER). 0 or -errno. */
static int eng_ur_ring_open(eng_uring *u) {
    struct io_uring_params prm;
    unsigned flags[3] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_CQSIZE,
    };
    int fd = -1, i, err = ENOSYS;
    unsigned k;
    if (getenv("ENGINE_IO_URING_PLAIN") != NULL) i = 2; else i = 0;   /* tests: no optional flags */
    for (; i < 3; i++) {
        memset(&prm, 0, sizeof(prm));
        prm.flags = flags[i];
        prm.cq_entries = ENG_UR_CQ_ENTRIES;
        fd = eng_ur_sys_setup(ENG_UR_SQ_ENTRIES, &prm);
        if (fd >= 0) break;
        err = errno;
        if (err != EINVAL) return -err;   /* ENOSYS, EPERM (seccomp, io_uring_disabled), ENOMEM */
    }
    if (fd < 0) return -err;
    if (!(prm.features & IORING_FEAT_EXT_ARG) || !(prm.features & IORING_FEAT_NODROP)) {
        close(fd);
        return -ENOSYS;
    }
    u->ring_fd = fd;
    u->setup_flags = prm.flags;
    u->sq_entries = prm.sq_entries;
    u->cq_entries = prm.cq_entries;
    u->sq_map_len = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
    u->cq_map_len = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
    if (prm.features & IORING_FEAT_SINGLE_MMAP) {
        if (u->cq_map_len > u->sq_map_len) u->sq_map_len = u->cq_map_len;
        u->cq_map_len = u->sq_map_len;
    }
    u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                     IORING_OFF_SQ_RING);
    if (u->sq_map == MAP_FAILED) { err = errno; eng_ur_unmap(u); return -err; }
    if (prm.features & IORING_FEAT_SINGLE_MMAP) {
        u->cq_map = u->sq_map;
    } else {
        u->cq_map = mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                         IORING_OFF_CQ_RING);
        if (u->cq_map == MAP_FAILED) { err = errno; eng_ur_unmap(u); return -err; }
    }
    u->sqes_len = prm.sq_entries * sizeof(struct io_uring_sqe);
    u->sqes = (struct io_uring_sqe *)mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE,
                                          MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (u->sqes == MAP_FAILED) { err = errno; eng_ur_unmap(u); return -err; }
    u->sq_head = (unsigned *)((char *)u->sq_map + prm.sq_off.head);
    u->sq_tail = (unsigned *)((char *)u->sq_map + prm.sq_off.tail);
    u->sq_mask = (unsigned *)((char *)u->sq_map + prm.sq_off.ring_mask);
    u->sq_array = (unsigned *)((char *)u->sq_map + prm.sq_off.array);
    u->cq_head = (unsigned *)((char *)u->cq_map + prm.cq_off.head);
    u->cq_tail = (unsigned *)((char *)u->cq_map + prm.cq_off.tail);
    u->cq_mask = (unsigned *)((char *)u->cq_map + prm.cq_off.ring_mask);
    u->cqes = (struct io_uring_cqe *)((char *)u->cq_map + prm.cq_off.cqes);
    for (k = 0; k < u->sq_entries; k++) u->sq_array[k] = k;   /* SQE i sits in slot i */
    u->sq_local = *u->sq_tail;
    u->enabled = !(u->setup_flags & IORING_SETUP_R_DISABLED);
    u->owner_fork = eng_ur_forks;
    return 0;
}

/* The thread about to submit owns the ring: enable it on first use; rebuild it when another thread
 * (or a forked child) takes over a SINGLE_ISSUER ring. 0 or -errno. */
static int eng_ur_rebuild(eng_uring *u);
static int eng_ur_own(eng_uring *u) {
    if (u->owner_fork != eng_ur_forks) return eng_ur_rebuild(u);   /* the parent's ring, shared */
    if (!(u->setup_flags & IORING_SETUP_SINGLE_ISSUER)) return 0;
    if (u->enabled) {
        if (pthread_equal(u->owner, pthread_self())) return 0;
        return eng_ur_rebuild(u);
    }
    if (eng_ur_sys_register(u->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) return -errno;
    u->enabled = 1;
    u->owner = pthread_self();
    u->owner_fork = eng_ur_forks;
    return 0;
}

/* Pending SQEs: published by the next enter. */
static inline unsigned eng_ur_pending(eng_uring *u) {
    return u->sq_local - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
}

/* Submit what is queued without waiting. 0 or -errno. */
static int eng_ur_flush(eng_uring *u) {
    int rc = eng_ur_own(u);
    unsigned n;
    if (rc < 0) return rc;
    n = eng_ur_pending(u);
    __atomic_store_n(u->sq_tail, u->sq_local, __ATOMIC_RELEASE);
    while (n) {
        /* GETEVENTS with no minimum: under DEFER_TASKRUN a removed request is completed (and
         * its file released) only by task work run in io_uring_enter; its CQE waits in the ring */
        rc = eng_ur_sys_enter(u->ring_fd, n, 0, IORING_ENTER_GETEVENTS, NULL, 0);
        if (rc < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EBUSY) return 0;   /* kernel short of memory / CQ backlog */
            return -errno;
        }
        n = eng_ur_pending(u);
    }
    return 0;
}

static struct io_uring_sqe *eng_ur_sqe(eng_uring *u) {
    struct io_uring_sqe *sqe;
    if (eng_ur_pending(u) >= u->sq_entries) {
        if (eng_ur_flush(u) < 0 || eng_ur_pending(u) >= u->sq_entries) return NULL;
    }
    sqe = &u->sqes[u->sq_local & *u->sq_mask];
    memset(sqe, 0, sizeof(*sqe));
    u->sq_local++;
    return sqe;
}

static inline uint64_t eng_ur_ud(int fd, uint32_t gen) { return ((uint64_t)gen << 32) | (uint32_t)fd; }

static unsigned eng_ur_pollmask(int mask) {
    unsigned m = 0;
    if (mask & ENG_EV_READ) m |= POLLIN | POLLRDHUP;
    if (mask & ENG_EV_WRITE) m |= POLLOUT;
    return m;
}

/* Queue a poll request for fd's wanted mask (a new generation). 0 or -errno. */
static int eng_ur_arm(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    struct io_uring_sqe *sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    s->gen++;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = eng_ur_pollmask(s->want);
    if (s->want & ENG_EV_EDGE) sqe->len = IORING_POLL_ADD_MULTI;
    sqe->user_data = eng_ur_ud(fd, s->gen);
    s->armed = 1;
    s->armed_mask = s->want;
    return 0;
}

/* Queue the removal of fd's armed request; its completions become stale. 0 or -errno. */
static int eng_ur_disarm(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    struct io_uring_sqe *sqe;
    if (!s->armed) return 0;
    sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    sqe->opcode = IORING_OP_POLL_REMOVE;
    sqe->fd = -1;
    sqe->addr = eng_ur_ud(fd, s->gen);
    sqe->user_data = ENG_UR_UD_IGNORE;
    s->gen++;
    s->armed = 0;
    return 0;
}

static int eng_ur_rebuild(eng_uring *u) {
    int fd, rc;
    eng_ur_unmap(u);   /* closing the ring ends every request on it */
    rc = eng_ur_ring_open(u);
    if (rc < 0) return rc;
    if (u->setup_flags & IORING_SETUP_SINGLE_ISSUER) {
        if (eng_ur_sys_register(u->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) return -errno;
        u->enabled = 1;
        u->owner = pthread_self();
        u->owner_fork = eng_ur_forks;
    }
    u->nrearm = 0;
    for (fd = 0; fd < u->nfds; fd++) {
        eng_ufd *s = &u->fds[fd];
        s->armed = 0;
        s->rearm = 0;
        if ((s->want & (ENG_EV_READ | ENG_EV_WRITE)) && !s->dead) {
            /* queued only: a full SQ is flushed by eng_ur_sqe, which owns the new ring already */
            rc = eng_ur_arm(u, fd);
            if (rc < 0) return rc;
        }
    }
    return 0;
}

static int eng_ur_create(eng_poller *p, int capacity) {
    eng_uring *u = (eng_uring *)calloc(1, sizeof(eng_uring));
    int rc;
    if (u == NULL) return -ENOMEM;
    u->ring_fd = -1;
    if (!eng_ur_atfork_done) {
        pthread_atfork(NULL, NULL, eng_ur_child);
        eng_ur_atfork_done = 1;
    }
    rc = eng_ur_ring_open(u);
    if (rc < 0) { free(u); return rc; }
    u->ev_cap = capacity > 0 ? capacity : 64;
    u->ev = (eng_uev *)malloc(sizeof(eng_uev) * (size_t)u->ev_cap);
    if (u->ev == NULL) { eng_ur_unmap(u); free(u); return -ENOMEM; }
    p->ur = u;
    p->fd = u->ring_fd;
    p->capacity = u->ev_cap;
    p->events = NULL;
    return 0;
}

static void eng_ur_close(eng_uring *u) {
    eng_ur_unmap(u);
    free(u->fds);
    free(u->rearm);
    free(u->ev);
    free(u);
}

static int eng_ur_fds_ensure(eng_uring *u, int fd) {
    int n;
    eng_ufd *fds;
    if (fd < u->nfds) return 0;
    n = u->nfds ? u->nfds : 64;
    while (n <= fd) n *= 2;
    fds = (eng_ufd *)realloc(u->fds, sizeof(eng_ufd) * (size_t)n);
    if (fds == NULL) return -ENOMEM;
    memset(fds + u->nfds, 0, sizeof(eng_ufd) * (size_t)(n - u->nfds));
    u->fds = fds;
    u->nfds = n;
    return 0;
}

static int eng_ur_set(eng_uring *u, int fd, int old, int new_) {
    int new_rw = new_ & (ENG_EV_READ | ENG_EV_WRITE);
    int rc;
    eng_ufd *s;
    if (fd < 0) return -EBADF;
    if (!(old & (ENG_EV_READ | ENG_EV_WRITE)) && new_rw) {
        /* a new registration (or a fresh one for a reused fd number): epoll's synchronous answers */
        struct stat st;
        if (fstat(fd, &st) < 0) return -errno;
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return -EPERM;
    }
    rc = eng_ur_fds_ensure(u, fd);
    if (rc < 0) return rc;
    s = &u->fds[fd];
    if (s->armed && (!(old & (ENG_EV_READ | ENG_EV_WRITE)) || s->armed_mask != (uint32_t)new_)) {
        /* a different wish, or a fresh registration: the armed request may even be on a closed
         * file whose number was reused */
        /* a removal is submitted at once, with whatever else is queued: the request it ends
         * holds the file, and a socket closed next must be closed for its peer now (as under
         * epoll, where the close itself drops the registration), not when the loop next waits */
        rc = eng_ur_disarm(u, fd);
        if (rc == 0) rc = eng_ur_flush(u);
        if (rc < 0) return rc;
    }
    s->want = (uint32_t)(new_rw ? new_ : 0);
    s->dead = 0;
    /* a new request is only queued: submitted with the next wait, it reports the readiness of
     * that moment (READ and WRITE together, as epoll would), not of this one */
    if (new_rw && !s->armed) return eng_ur_arm(u, fd);
    return 0;
}

static void eng_ur_push_rearm(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    if (s->rearm) return;
    if (u->nrearm == u->rearm_cap) {
        int cap = u->rearm_cap ? u->rearm_cap * 2 : 64;
        int *r = (int *)realloc(u->rearm, sizeof(int) * (size_t)cap);
        if (r == NULL) return;   /* left unarmed until its next set(); cannot happen in practice */
        u->rearm = r;
        u->rearm_cap = cap;
    }
    u->rearm[u->nrearm++] = fd;
    s->rearm = 1;
}

/* Move completions into ev[n..ev_cap); the rest stay in the CQ for the next wait. Returns the new n. */
static int eng_ur_reap(eng_uring *u, int n) {
    unsigned head = *u->cq_head;
    unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
    unsigned mask = *u->cq_mask;
    while (head != tail && n < u->ev_cap) {
        struct io_uring_cqe *cqe = &u->cqes[head & mask];
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        unsigned flags = cqe->flags;
        int fd;
        eng_ufd *s;
        head++;
        if (ud == ENG_UR_UD_IGNORE) continue;
        fd = (int)(uint32_t)ud;
        if (fd < 0 || fd >= u->nfds) continue;
        s = &u->fds[fd];
        if (s->gen != (uint32_t)(ud >> 32) || !s->armed) continue;   /* a removed request's */
        if (!(flags & IORING_CQE_F_MORE)) {
            s->armed = 0;
            if (s->want) eng_ur_push_rearm(u, fd);
        }
        if (res < 0) {
            if (res == -ECANCELED) continue;
            /* the kernel refused the fd (closed before the request reached it...): the waiter
             * runs and meets the error in its own system call, rather than waiting forever */
            s->dead = 1;
            u->ev[n].fd = fd;
            u->ev[n].revents = ENG_EV_READ | ENG_EV_WRITE | ENG_EV_ERROR;
            n++;
            continue;
        }
        {
            int r = 0;
            if (res & (POLLIN | POLLRDHUP | POLLPRI)) r |= ENG_EV_READ;
            if (res & POLLOUT) r |= ENG_EV_WRITE;
            if (res & (POLLERR | POLLHUP)) r |= ENG_EV_READ | ENG_EV_WRITE | ENG_EV_ERROR;
            if (!r) continue;
            u->ev[n].fd = fd;
            u->ev[n].revents = r;
            n++;
        }
    }
    __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
    return n;
}

static int eng_ur_wait(eng_uring *u, int timeout_ms) {
    struct io_uring_getevents_arg arg;
    struct __kernel_timespec ts;
    unsigned flags, min, submit;
    int i, n, rc;

    rc = eng_ur_own(u);
    if (rc < 0) return rc;
    /* level-triggered requests that completed last time and are still wanted: armed again now,
     * after the loop handled their events (an fd still ready completes again at once) */
    for (i = 0; i < u->nrearm; i++) {
        int fd = u->rearm[i];
        eng_ufd *s = &u->fds[fd];
        s->rearm = 0;
        if ((s->want & (ENG_EV_READ | ENG_EV_WRITE)) && !s->armed && !s->dead) {
            rc = eng_ur_arm(u, fd);
            if (rc < 0) {   /* SQ full and the kernel busy: keep the rest for the next wait */
                memmove(u->rearm, u->rearm + i, sizeof(int) * (size_t)(u->nrearm - i));
                u->nrearm -= i;
                for (i = 0; i < u->nrearm; i++) u->fds[u->rearm[i]].rearm = 1;
                goto enter;
            }
        }
    }
    u->nrearm = 0;
enter:
    n = eng_ur_reap(u, 0);
    submit = eng_ur_pending(u);
    if (n > 0 && !submit) return n;
    __atomic_store_n(u->sq_tail, u->sq_local, __ATOMIC_RELEASE);
    flags = IORING_ENTER_GETEVENTS;
    min = (n > 0 || timeout_ms == 0) ? 0 : 1;
    if (min && timeout_ms > 0) {
        memset(&arg, 0, sizeof(arg));
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000LL;
        arg.ts = (uint64_t)(uintptr_t)&ts;
        flags |= IORING_ENTER_EXT_ARG;
        rc = eng_ur_sys_enter(u->ring_fd, submit, min, flags, &arg, sizeof(arg));
    } else {
        rc = eng_ur_sys_enter(u->ring_fd, submit, min, flags, NULL, 0);
    }
    if (rc < 0) {
        int err = errno;
        if (err == ETIME || err == EAGAIN || err == EBUSY) err = 0;
        if (err == EINTR && n == 0) return -EINTR;
        if (err && err != EINTR) return -err;
    }
    return eng_ur_reap(u, n);
}

#endif
