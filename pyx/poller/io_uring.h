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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
#ifndef IORING_ACCEPT_MULTISHOT
#  define IORING_ACCEPT_MULTISHOT (1U << 0)
#endif
#ifndef IORING_FEAT_EXT_ARG
#  define IORING_FEAT_EXT_ARG (1U << 8)
#endif

#define ENG_UR_SQ_ENTRIES   256u
#define ENG_UR_CQ_ENTRIES   4096u
#define ENG_UR_UD_IGNORE    (~(uint64_t)0)   /* user_data of requests whose completion is dropped */
#define ENG_UR_UD_RECV      ((uint64_t)1 << 63)   /* tags a recv request's user_data */
#define ENG_UR_UD_SEND      ((uint64_t)1 << 62)   /* tags a send request's user_data */
#define ENG_UR_UD_ACCEPT    (ENG_UR_UD_RECV | ENG_UR_UD_SEND)   /* both tags: an accept request's */
#define ENG_UR_SEQ_MASK     0x3fffffffu           /* request numbers: 30 bits, below the tags */
#define ENG_UR_BGID         7                     /* the provided-buffer group of receives */
#define ENG_UR_ACCEPT_QMAX  1024   /* default of accept_qmax */

typedef struct eng_ufd {       /* the ring's view of one fd number */
    uint32_t want;             /* the ENG_EV_* mask the loop wants (0: none) */
    uint32_t gen;              /* generation of the newest poll request on this fd */
    uint32_t armed_mask;       /* what the armed request waits for, when armed */
    uint8_t armed;             /* a request of this generation is queued or in the kernel */
    uint8_t rearm;             /* on the re-arm list */
    uint8_t dead;              /* the kernel refused the fd: not re-armed until the next set */
    /* completion receives (ENG_EV_RECV): a multishot recv request into the provided buffers */
    uint8_t rarmed;            /* the recv request numbered rseq is queued or in the kernel */
    uint8_t rstarved;          /* it ended for want of buffers: armed again when one comes back */
    uint8_t rsig;              /* a READ event for the queue is in the batch being reported */
    uint8_t rsigq;             /* on the sig list (report the queue at the next wait) */
    uint8_t reof;              /* the queue ends with end-of-file */
    int rerr;                  /* ... or with this errno (0: none) */
    uint32_t rseq;             /* number of the newest recv request on this fd */
    uint32_t rforget;          /* rseq when the fd was last forgotten: older requests' data is dropped */
    /* completion accepts (ENG_EV_ACCEPT, a listening socket): the r-request above is a multishot
     * accept instead (rarmed, rseq, rforget, rsig, rsigq and rerr serve both), and what it
     * accepts waits here, oldest first */
    uint8_t racc;              /* the fd's r-request is an accept request */
    uint8_t afull;             /* the queue reached accept_qmax: armed again once emptied */
    int *aq;                   /* accepted fds: a circular queue of acap */
    int ahead, an, acap;
    int qhead, qtail;          /* received buffers (ids), oldest first; -1: none */
    uint32_t qoff;             /* bytes of the head buffer already taken */
    size_t qbytes;             /* bytes queued */
    /* completion sends (ENG_EV_SEND): one send request at a time, its result kept for the writer */
    uint8_t sarmed;            /* the send request numbered sseq is queued or in the kernel */
    uint8_t sdone;             /* its result (sres) waits for eng_poller_send_result */
    uint32_t sseq;
    int sres;
    int siov_cap;
    struct iovec *siov;        /* the buffers of the send request (the writer keeps them alive) */
    struct msghdr smsg;
} eng_ufd;

typedef struct eng_ulist { int *v; int n, cap; } eng_ulist;

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
    int ev_last;               /* events in the last batch reported */
    /* provided buffer ring (group ENG_UR_BGID) for multishot receives; recv_on when registered */
    int recv_on;
    struct io_uring_buf_ring *br;
    size_t br_len;
    unsigned br_entries;       /* a power of two >= nbufs */
    unsigned short br_tail;
    char **baddr;              /* buffer id -> its memory (owned by the loop's BufferPool) */
    unsigned nbufs, bsize;
    int accept_qmax;           /* accepted sockets queued per listener before its request is
                                * cancelled (ENGINE_IO_URING_ACCEPT_QUEUE, default ENG_UR_ACCEPT_QMAX) */
    int *bnext;                /* buffer id -> the next id in its fd's queue */
    unsigned *blen;            /* buffer id -> bytes received into it */
    uint8_t *bheld;            /* buffer id -> in a queue (not in the kernel's ring) */
    unsigned bfree;            /* buffers in the kernel's ring */
    eng_ulist starve, sig;
    eng_ulist sent;            /* fds whose send completed unasked in the last wait (no WRITE event) */
    unsigned long long st_cqes, st_enobufs, st_bytes, st_rearms, st_accepts, st_accfull;
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

static inline uint64_t eng_ur_ud(int fd, uint32_t gen) {
    return ((uint64_t)(gen & ENG_UR_SEQ_MASK) << 32) | (uint32_t)fd;
}

/* What an fd's poll request waits for: its wanted mask, less READ where a recv request serves the
 * reading (0: no poll request). */
static inline uint32_t eng_ur_pwant(eng_uring *u, uint32_t want) {
    if (u->recv_on && (want & (ENG_EV_RECV | ENG_EV_ACCEPT))) want &= ~(uint32_t)ENG_EV_READ;
    if (u->recv_on && (want & ENG_EV_SEND)) want &= ~(uint32_t)ENG_EV_WRITE;
    if (!(want & (ENG_EV_READ | ENG_EV_WRITE))) return 0;
    return want & ~(uint32_t)(ENG_EV_RECV | ENG_EV_SEND | ENG_EV_ACCEPT);
}

/* Whether an fd's reading is served by a multishot recv request. */
static inline int eng_ur_rwant(eng_uring *u, uint32_t want) {
    return u->recv_on && (want & ENG_EV_RECV) && (want & ENG_EV_READ);
}

/* Whether a listening fd's accepting is served by a multishot accept request. */
static inline int eng_ur_awant(eng_uring *u, uint32_t want) {
    return u->recv_on && (want & ENG_EV_ACCEPT) && (want & ENG_EV_READ);
}

static int eng_ur_lpush(eng_ulist *l, int fd) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        int *v = (int *)realloc(l->v, sizeof(int) * (size_t)cap);
        if (v == NULL) return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = fd;
    return 0;
}

static unsigned eng_ur_pollmask(int mask) {
    unsigned m = 0;
    if (mask & ENG_EV_READ) m |= POLLIN | POLLRDHUP;
    if (mask & ENG_EV_WRITE) m |= POLLOUT;
    return m;
}

/* Queue a poll request for fd's wanted mask (a new generation). 0 or -errno. */
static int eng_ur_arm(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    uint32_t pw = eng_ur_pwant(u, s->want);
    struct io_uring_sqe *sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    s->gen = (s->gen + 1) & ENG_UR_SEQ_MASK;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = eng_ur_pollmask((int)pw);
    if (pw & ENG_EV_EDGE) sqe->len = IORING_POLL_ADD_MULTI;
    sqe->user_data = eng_ur_ud(fd, s->gen);
    s->armed = 1;
    s->armed_mask = pw;
    return 0;
}

/* --- completion receives -------------------------------------------------------------------------
 * A stream socket whose reader asks for ENG_EV_RECV (a transport) is read by one multishot
 * IORING_OP_RECV request with IOSQE_BUFFER_SELECT: the kernel receives into a buffer it takes from
 * the provided-buffer ring (buffers of the loop's BufferPool) and posts a completion per buffer,
 * staying armed (IORING_CQE_F_MORE). Completions are queued per fd, in order, and the fd is reported
 * READ once per batch; the transport copies out of the queue (eng_poller_recv_copy) instead of
 * calling recv(2), and the buffers go back to the ring as they are emptied.
 *  - Data is never dropped: a request that was cancelled (pause_reading) may still post data,
 *    which is queued and reported when reading resumes. Only a forgotten fd's (the transport closed)
 *    requests are dropped, their buffers returned: a request numbered at or below rforget.
 *  - When the ring runs out of buffers (every one queued behind paused readers) the kernel ends the
 *    request with ENOBUFS; the fd is "starved" and armed again once a quarter of the buffers are back.
 *    Its bytes wait in the socket meanwhile (TCP flow control), so nothing is lost.
 *  - End of file (res 0) and errors end the request; they are queued after the data, so the
 *    transport sees them in order. */

static inline uint64_t eng_ur_rud(int fd, uint32_t seq) {
    return ENG_UR_UD_RECV | ((uint64_t)(seq & ENG_UR_SEQ_MASK) << 32) | (uint32_t)fd;
}

/* user_data of fd's send request number seq */
static inline uint64_t eng_ur_sud(int fd, uint32_t seq) {
    return ENG_UR_UD_SEND | ((uint64_t)seq << 32) | (uint32_t)fd;
}

/* sqe: cancel the request whose user_data is target; its own completion is ignored */
static inline void eng_ur_prep_cancel(struct io_uring_sqe *sqe, uint64_t target) {
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = target;
    sqe->user_data = ENG_UR_UD_IGNORE;
}

static int eng_ur_arm_recv(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    struct io_uring_sqe *sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    s->rseq = (s->rseq + 1) & ENG_UR_SEQ_MASK;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = fd;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = ENG_UR_BGID;
    sqe->user_data = eng_ur_rud(fd, s->rseq);
    s->rarmed = 1;
    s->racc = 0;
    return 0;
}

/* --- completion accepts ----------------------------------------------------------------------
 * A listening socket whose reader asks for ENG_EV_ACCEPT (a server's) is served by one multishot
 * IORING_OP_ACCEPT request: the kernel accepts (SOCK_NONBLOCK | SOCK_CLOEXEC, no address: one
 * buffer would be overwritten by every completion) and posts each new fd; they are queued per
 * listener and the listener is reported READ once per batch, and the loop takes them with
 * eng_poller_accept_next instead of calling accept4(2).
 *  - Nothing accepted is lost when a server closes: the loop takes what is queued (and what
 *    completions not yet reaped carry, eng_ur_accept_collect) before it forgets the listener and
 *    serves it; only what the request posts after that is closed here (the peer sees the
 *    connection closed, as for a connection left in a closed listener's backlog).
 *  - An error (EMFILE...) ends the request and is queued after the fds: the loop meets it where
 *    accept4(2) would have raised it, and the request is armed again when the loop takes it (if
 *    the loop still wants to accept).
 *  - A request that accepted is cancelled (what it accepted meanwhile still counts) and a new
 *    one armed at the next wait: accept requests wait exclusively, and one that stayed armed
 *    would keep its place at the head of the socket's wait queue and take every connection
 *    from the other processes sharing the socket (gunicorn's workers). Renewed per batch, the
 *    processes take turns, as they do under epoll.
 *  - A queue of accept_qmax fds is not renewed (the kernel's backlog holds what comes, as
 *    when a loop does not call accept4): armed again once the loop emptied it. */

static inline uint64_t eng_ur_aud(int fd, uint32_t seq) {
    return ENG_UR_UD_ACCEPT | ((uint64_t)(seq & ENG_UR_SEQ_MASK) << 32) | (uint32_t)fd;
}

static int eng_ur_arm_accept(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    struct io_uring_sqe *sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    s->rseq = (s->rseq + 1) & ENG_UR_SEQ_MASK;
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = fd;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    sqe->user_data = eng_ur_aud(fd, s->rseq);
    s->rarmed = 1;
    s->racc = 1;
    return 0;
}

/* Arm fd's accept request unless one is armed, an error waits for the loop, or the queue is full
 * (then it is armed again once the loop has emptied it). 0 or -errno. */
static int eng_ur_accept_arm_if(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    if (s->rarmed || s->afull || s->rerr) return 0;
    if (s->an >= u->accept_qmax) {
        s->afull = 1;
        u->st_accfull++;
        return 0;
    }
    return eng_ur_arm_accept(u, fd);
}

/* Close every accepted fd queued for s. */
static void eng_ur_accept_drop(eng_ufd *s) {
    while (s->an) {
        close(s->aq[s->ahead]);
        s->ahead = (s->ahead + 1) % s->acap;
        s->an--;
    }
    s->ahead = 0;
    s->afull = 0;
}

/* Queue the cancellation of fd's recv request (the caller flushes). 0 or -errno. */
static int eng_ur_cancel_recv(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    struct io_uring_sqe *sqe;
    if (!s->rarmed) return 0;
    sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    eng_ur_prep_cancel(sqe, s->racc ? eng_ur_aud(fd, s->rseq) : eng_ur_rud(fd, s->rseq));
    s->rarmed = 0;
    return 0;
}

/* Give buffer bid back to the kernel's ring. */
static void eng_ur_give(eng_uring *u, unsigned bid) {
    struct io_uring_buf *b = &u->br->bufs[u->br_tail & (u->br_entries - 1)];
    b->addr = (uint64_t)(uintptr_t)u->baddr[bid];
    b->len = u->bsize;
    b->bid = (uint16_t)bid;
    u->br_tail++;
    __atomic_store_n(&u->br->tail, u->br_tail, __ATOMIC_RELEASE);
    u->bheld[bid] = 0;
    u->bfree++;
}

static void eng_ur_push_rearm(eng_uring *u, int fd);

/* Starved fds are armed again (at the next wait) once a quarter of the buffers are free. */
static void eng_ur_unstarve(eng_uring *u) {
    int i;
    if (!u->starve.n || u->bfree * 4 < u->nbufs) return;
    for (i = 0; i < u->starve.n; i++) {
        int fd = u->starve.v[i];
        if (fd < u->nfds && u->fds[fd].rstarved) {
            u->fds[fd].rstarved = 0;
            eng_ur_push_rearm(u, fd);
        }
    }
    u->starve.n = 0;
}

static void eng_ur_signal(eng_uring *u, int fd) {
    eng_ufd *s = &u->fds[fd];
    if (s->rsigq) return;
    if (eng_ur_lpush(&u->sig, fd) == 0) s->rsigq = 1;
}

/* Drop fd's queue, giving its buffers back. */
static void eng_ur_queue_drop(eng_uring *u, eng_ufd *s) {
    int bid = s->qhead;
    while (bid >= 0) {
        int next = u->bnext[bid];
        eng_ur_give(u, (unsigned)bid);
        bid = next;
    }
    s->qhead = s->qtail = -1;
    s->qoff = 0;
    s->qbytes = 0;
    s->reof = 0;
    s->rerr = 0;
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
    s->gen = (s->gen + 1) & ENG_UR_SEQ_MASK;
    s->armed = 0;
    return 0;
}

static int eng_ur_reap(eng_uring *u, int n);
static int eng_ur_br_register(eng_uring *u);

static int eng_ur_rebuild(eng_uring *u) {
    int fd, rc;
    unsigned bid;
    if (u->nbufs) {
        if (u->owner_fork == eng_ur_forks) {
            /* another thread takes over: what the old ring received is queued first (its events
             * are dropped: poll requests are armed again below, queues are reported) */
            while (*u->cq_head != __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE)) eng_ur_reap(u, 0);
        } else {
            /* a forked child: the ring and its completions are the parent's */
            for (fd = 0; fd < u->nfds; fd++) {
                eng_ufd *s = &u->fds[fd];
                s->qhead = s->qtail = -1;
                s->qoff = 0; s->qbytes = 0; s->reof = 0; s->rerr = 0;
                eng_ur_accept_drop(s);   /* this process's copies of what the parent accepted */
            }
            memset(u->bheld, 0, u->nbufs);
        }
    }
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
    u->starve.n = 0;
    u->sig.n = 0;
    if (u->nbufs) {
        u->br_tail = 0;
        u->bfree = 0;
        memset(u->br, 0, u->br_len);
        for (bid = 0; bid < u->nbufs; bid++)
            if (!u->bheld[bid]) eng_ur_give(u, bid);
        if (eng_ur_br_register(u) < 0) u->recv_on = 0;
    }
    for (fd = 0; fd < u->nfds; fd++) {
        eng_ufd *s = &u->fds[fd];
        s->armed = 0;
        s->rearm = 0;
        s->rarmed = 0;
        s->rstarved = 0;
        s->rsig = 0;
        s->rsigq = 0;
        s->rforget = s->rseq;   /* the old ring's requests are gone with it */
        if (s->sarmed) {
            /* a send still in flight waited for room in the socket (a stream send that could
             * send something completes at once): it sent nothing; the writer sends it again */
            s->sarmed = 0;
            s->sdone = 1;
            s->sres = 0;
        }
        if (s->sdone) eng_ur_signal(u, fd);
        if (eng_ur_pwant(u, s->want) && !s->dead) {
            /* queued only: a full SQ is flushed by eng_ur_sqe, which owns the new ring already */
            rc = eng_ur_arm(u, fd);
            if (rc < 0) return rc;
        }
        if (eng_ur_rwant(u, s->want)) {
            rc = eng_ur_arm_recv(u, fd);
            if (rc < 0) return rc;
            if (s->qbytes || s->reof || s->rerr) eng_ur_signal(u, fd);
        }
        if (eng_ur_awant(u, s->want)) {
            rc = eng_ur_accept_arm_if(u, fd);
            if (rc < 0) return rc;
            if (s->an || s->rerr) eng_ur_signal(u, fd);
        }
    }
    u->ev_last = 0;
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
    if (u->fds != NULL) {
        int i;
        for (i = 0; i < u->nfds; i++) {
            free(u->fds[i].siov);
            eng_ur_accept_drop(&u->fds[i]);
            free(u->fds[i].aq);
        }
    }
    free(u->fds);
    free(u->rearm);
    free(u->ev);
    free(u->br);
    free(u->baddr);
    free(u->bnext);
    free(u->blen);
    free(u->bheld);
    free(u->starve.v);
    free(u->sig.v);
    free(u->sent.v);
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
    {
        int i;
        for (i = u->nfds; i < n; i++) fds[i].qhead = fds[i].qtail = -1;
    }
    u->fds = fds;
    u->nfds = n;
    return 0;
}

static int eng_ur_set(eng_uring *u, int fd, int old, int new_) {
    int new_rw = new_ & (ENG_EV_READ | ENG_EV_WRITE);
    int rc, fresh, flush;
    uint32_t want, pw;
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
    want = (uint32_t)(new_rw ? new_ : 0);
    pw = eng_ur_pwant(u, want);
    fresh = !(old & (ENG_EV_READ | ENG_EV_WRITE));
    flush = 0;
    if (s->armed && (fresh || s->armed_mask != pw)) {
        /* a different wish, or a fresh registration: the armed request may even be on a closed
         * file whose number was reused */
        /* a removal is submitted at once, with whatever else is queued: the request it ends
         * holds the file, and a socket closed next must be closed for its peer now (as under
         * epoll, where the close itself drops the registration), not when the loop next waits */
        rc = eng_ur_disarm(u, fd);
        if (rc < 0) return rc;
        flush = 1;
    }
    if (s->rarmed && (fresh || !(s->racc ? eng_ur_awant(u, want) : eng_ur_rwant(u, want)))) {
        rc = eng_ur_cancel_recv(u, fd);   /* what it still posts is queued, not lost */
        if (rc < 0) return rc;
        flush = 1;
    }
    if (flush) {
        rc = eng_ur_flush(u);
        if (rc < 0) return rc;
    }
    s->want = want;
    s->dead = 0;
    if (eng_ur_rwant(u, want)) {
        if (!s->rarmed && !s->rstarved) {
            rc = eng_ur_arm_recv(u, fd);
            if (rc < 0) return rc;
        }
        if (s->qbytes || s->reof || s->rerr) eng_ur_signal(u, fd);   /* received while paused */
    }
    if (eng_ur_awant(u, want)) {
        rc = eng_ur_accept_arm_if(u, fd);
        if (rc < 0) return rc;
        if (s->an || s->rerr) eng_ur_signal(u, fd);   /* accepted while paused */
    }
    if ((want & ENG_EV_WRITE) && s->sdone) eng_ur_signal(u, fd);   /* a send completed before it asked */
    /* a new request is only queued: submitted with the next wait, it reports the readiness of
     * that moment (READ and WRITE together, as epoll would), not of this one */
    if (pw && !s->armed) return eng_ur_arm(u, fd);
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

/* Queue accepted fd at the tail of s's accept queue. 0 or -ENOMEM. */
static int eng_ur_aq_push(eng_ufd *s, int fd) {
    if (s->an == s->acap) {
        int cap = s->acap ? s->acap * 2 : 16, i;
        int *q = (int *)malloc(sizeof(int) * (size_t)cap);
        if (q == NULL) return -ENOMEM;
        for (i = 0; i < s->an; i++) q[i] = s->aq[(s->ahead + i) % s->acap];
        free(s->aq);
        s->aq = q;
        s->acap = cap;
        s->ahead = 0;
    }
    s->aq[(s->ahead + s->an) % s->acap] = fd;
    s->an++;
    return 0;
}

/* Whether request number seq of s was made after s was last forgotten (its completions count). */
static inline int eng_ur_owned(eng_ufd *s, uint32_t seq) {
    uint32_t age = (seq - s->rforget) & ENG_UR_SEQ_MASK;
    return age != 0 && age < (ENG_UR_SEQ_MASK >> 1);
}

/* Report fd READ in the batch being reaped, once per batch. Returns the new n. */
static inline int eng_ur_report_read(eng_uring *u, eng_ufd *s, int fd, int n) {
    if (s->rsig) return n;
    u->ev[n].fd = fd;
    u->ev[n].revents = ENG_EV_READ;
    s->rsig = 1;
    return n + 1;
}

/* A recv request's completion: its buffer queued (or returned), the fd reported. Returns the new n. */
static int eng_ur_reap_recv(eng_uring *u, uint64_t ud, int res, unsigned flags, int n) {
    int fd = (int)(uint32_t)ud;
    uint32_t seq = (uint32_t)(ud >> 32) & ENG_UR_SEQ_MASK;
    int owned;
    eng_ufd *s;
    if (fd < 0 || fd >= u->nfds) {
        if (flags & IORING_CQE_F_BUFFER) eng_ur_give(u, flags >> IORING_CQE_BUFFER_SHIFT);
        return n;
    }
    s = &u->fds[fd];
    owned = eng_ur_owned(s, seq);
    u->st_cqes++;
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (owned && res > 0 && bid < u->nbufs) {
            u->bheld[bid] = 1;
            u->bfree--;
            u->blen[bid] = (unsigned)res;
            u->bnext[bid] = -1;
            if (s->qtail >= 0) u->bnext[s->qtail] = (int)bid;
            else { s->qhead = (int)bid; s->qoff = 0; }
            s->qtail = (int)bid;
            s->qbytes += (size_t)res;
            u->st_bytes += (unsigned long long)res;
        } else if (bid < u->nbufs) {
            eng_ur_give(u, bid);
        }
    }
    if (!(flags & IORING_CQE_F_MORE) && owned && seq == s->rseq && s->rarmed) {
        s->rarmed = 0;
        if (res == -ENOBUFS) {
            u->st_enobufs++;
            if (!s->rstarved && eng_ur_lpush(&u->starve, fd) == 0) s->rstarved = 1;
            eng_ur_unstarve(u);    /* buffers may have come back since the kernel ran short */
        } else if (res > 0) {
            eng_ur_push_rearm(u, fd);    /* ended for another reason (CQ overflow): armed again */
        }
    }
    if (!owned) return n;
    if (res == 0) s->reof = 1;
    else if (res < 0) {
        if (res == -ECANCELED || res == -ENOBUFS) return n;
        if (!s->rerr) s->rerr = -res;
    }
    return eng_ur_rwant(u, s->want) ? eng_ur_report_read(u, s, fd, n) : n;
}

/* An accept request's completion: the new fd queued (or closed), the listener reported. Returns the new n. */
static int eng_ur_reap_accept(eng_uring *u, uint64_t ud, int res, unsigned flags, int n) {
    int fd = (int)(uint32_t)ud;
    uint32_t seq = (uint32_t)(ud >> 32) & ENG_UR_SEQ_MASK;
    eng_ufd *s;
    if (fd < 0 || fd >= u->nfds || !eng_ur_owned(&u->fds[fd], seq)) {   /* forgotten since */
        if (res >= 0) close(res);
        return n;
    }
    s = &u->fds[fd];
    if (!(flags & IORING_CQE_F_MORE) && seq == s->rseq && s->rarmed) {
        s->rarmed = 0;
        if (res >= 0 && !s->afull) eng_ur_push_rearm(u, fd);   /* ended for another reason (CQ overflow) */
    }
    if (res >= 0) {
        if (eng_ur_aq_push(s, res) < 0) { close(res); return n; }   /* the peer sees a reset; cannot happen in practice */
        u->st_accepts++;
        /* the request accepted what was waiting: it is replaced by a new one at the next wait,
         * which queues behind the other processes' requests on a shared listening socket (an
         * accept request waits exclusively: the first in the socket's queue gets every
         * connection, and a multishot one never leaves its place) */
        if (s->rarmed && eng_ur_cancel_recv(u, fd) == 0) eng_ur_push_rearm(u, fd);
    } else {
        if (res == -ECANCELED) return n;
        if (!s->rerr) s->rerr = -res;
    }
    return eng_ur_awant(u, s->want) ? eng_ur_report_read(u, s, fd, n) : n;
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
        if ((ud & ENG_UR_UD_ACCEPT) == ENG_UR_UD_ACCEPT) {
            n = eng_ur_reap_accept(u, ud, res, flags, n);
            continue;
        }
        if (ud & ENG_UR_UD_RECV) {
            n = eng_ur_reap_recv(u, ud, res, flags, n);
            continue;
        }
        if (ud & ENG_UR_UD_SEND) {
            fd = (int)(uint32_t)ud;
            if (fd < 0 || fd >= u->nfds) continue;
            s = &u->fds[fd];
            if (!s->sarmed || s->sseq != ((uint32_t)(ud >> 32) & ENG_UR_SEQ_MASK)) continue;
            if (flags & IORING_CQE_F_MORE) continue;
            s->sarmed = 0;
            s->sdone = 1;
            s->sres = res;
            if (s->want & ENG_EV_WRITE) {
                u->ev[n].fd = fd;
                u->ev[n].revents = ENG_EV_WRITE;
                n++;
            } else {
                /* the writer takes the result when it next writes, or when the loop goes over
                 * this list after the wait (eng_poller_sent): its buffers are freed while hot */
                (void)eng_ur_lpush(&u->sent, fd);
            }
            continue;
        }
        fd = (int)(uint32_t)ud;
        if (fd < 0 || fd >= u->nfds) continue;
        s = &u->fds[fd];
        if (s->gen != ((uint32_t)(ud >> 32) & ENG_UR_SEQ_MASK) || !s->armed) continue;   /* a removed request's */
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
            if (eng_ur_rwant(u, s->want)) r &= ~ENG_EV_READ;   /* the recv request reports it */
            if (!(r & (ENG_EV_READ | ENG_EV_WRITE))) continue;
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
    int i, n = 0, rc;

    rc = eng_ur_own(u);
    if (rc < 0) return rc;
    u->sent.n = 0;
    /* the last batch was handled: its queues may be reported again */
    for (i = 0; i < u->ev_last; i++) {
        int fd = u->ev[i].fd;
        if (fd >= 0 && fd < u->nfds) u->fds[fd].rsig = 0;
    }
    u->ev_last = 0;
    /* level-triggered requests that completed last time and are still wanted: armed again now,
     * after the loop handled their events (an fd still ready completes again at once); recv
     * requests that ended (starved, overflow) likewise */
    for (i = 0; i < u->nrearm; i++) {
        int fd = u->rearm[i];
        eng_ufd *s = &u->fds[fd];
        rc = 0;
        if (eng_ur_pwant(u, s->want) && !s->armed && !s->dead) rc = eng_ur_arm(u, fd);
        if (rc == 0 && eng_ur_rwant(u, s->want) && !s->rarmed && !s->rstarved) {
            rc = eng_ur_arm_recv(u, fd);
            if (rc == 0) u->st_rearms++;
        }
        if (rc == 0 && eng_ur_awant(u, s->want)) rc = eng_ur_accept_arm_if(u, fd);
        if (rc < 0) {   /* SQ full and the kernel busy: keep the rest for the next wait */
            memmove(u->rearm, u->rearm + i, sizeof(int) * (size_t)(u->nrearm - i));
            u->nrearm -= i;
            goto reported;
        }
        s->rearm = 0;
    }
    u->nrearm = 0;
reported:
    /* queues left with data (a read took part of one; reading resumed) are reported first */
    for (i = 0; i < u->sig.n; i++) {
        int fd = u->sig.v[i];
        eng_ufd *s;
        if (fd >= u->nfds) continue;
        s = &u->fds[fd];
        if (n == u->ev_cap) {
            memmove(u->sig.v, u->sig.v + i, sizeof(int) * (size_t)(u->sig.n - i));
            u->sig.n -= i;
            goto enter;
        }
        s->rsigq = 0;
        if ((eng_ur_rwant(u, s->want) && (s->qbytes || s->reof || s->rerr)) ||
            (eng_ur_awant(u, s->want) && (s->an || s->rerr)))
            n = eng_ur_report_read(u, s, fd, n);
        if (s->sdone && (s->want & ENG_EV_WRITE) && n < u->ev_cap) {   /* a completed send, for a writer that asked since */
            u->ev[n].fd = fd;
            u->ev[n].revents = ENG_EV_WRITE;
            n++;
        }
    }
    u->sig.n = 0;
enter:
    n = eng_ur_reap(u, n);
    submit = eng_ur_pending(u);
    if (n > 0 && !submit) return u->ev_last = n;
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
        if (err && err != EINTR) { u->ev_last = n; return -err; }
    }
    return u->ev_last = eng_ur_reap(u, n);
}

/* --- the completion-receive API of the poller contract -------------------------------------- */

static int eng_ur_br_register(eng_uring *u) {
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)u->br;
    reg.ring_entries = u->br_entries;
    reg.bgid = ENG_UR_BGID;
    if (eng_ur_sys_register(u->ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) return -errno;
    u->recv_on = (u->setup_flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    return 0;
}

/* Provide n buffers of `size` bytes (the caller keeps the memory alive until close) and read
 * stream sockets registered with ENG_EV_RECV by multishot receives. Only on rings with
 * DEFER_TASKRUN (6.1: multishot recv is 6.0, buffer rings 5.19). 0, or -errno: receives stay off. */
static int eng_ur_recv_setup(eng_uring *u, char **addrs, unsigned n, unsigned size) {
    unsigned entries = 1, i;
    int rc;
    if (u->nbufs || n == 0 || n > 32768 || size == 0) return -EINVAL;
    if (!(u->setup_flags & IORING_SETUP_DEFER_TASKRUN)) return -ENOTSUP;
    while (entries < n) entries <<= 1;
    u->br_entries = entries;
    u->br_len = sizeof(struct io_uring_buf) * entries;
    if (posix_memalign((void **)&u->br, 4096, u->br_len < 4096 ? 4096 : u->br_len) != 0) {
        u->br = NULL;
        return -ENOMEM;
    }
    memset(u->br, 0, u->br_len);
    u->baddr = (char **)malloc(sizeof(char *) * n);
    u->bnext = (int *)malloc(sizeof(int) * n);
    u->blen = (unsigned *)malloc(sizeof(unsigned) * n);
    u->bheld = (uint8_t *)calloc(n, 1);
    if (!u->baddr || !u->bnext || !u->blen || !u->bheld) return -ENOMEM;
    memcpy(u->baddr, addrs, sizeof(char *) * n);
    u->nbufs = n;
    u->bsize = size;
    {
        const char *q = getenv("ENGINE_IO_URING_ACCEPT_QUEUE");
        u->accept_qmax = q != NULL && atoi(q) > 0 ? atoi(q) : ENG_UR_ACCEPT_QMAX;
    }
    u->br_tail = 0;
    u->bfree = 0;
    for (i = 0; i < n; i++) eng_ur_give(u, i);
    rc = eng_ur_br_register(u);
    if (rc < 0) u->nbufs = 0;
    return rc;
}

/* Bytes queued for fd; 0: end of file is next; -errno: that error is next; -EAGAIN: nothing yet;
 * -ENOTSUP: fd is not read by a recv request (read it with recv(2)). */
static ssize_t eng_ur_recv_avail(eng_uring *u, int fd) {
    eng_ufd *s;
    if (!u->recv_on || fd < 0 || fd >= u->nfds) return -ENOTSUP;
    s = &u->fds[fd];
    if (s->qbytes) return (ssize_t)s->qbytes;
    if (s->rerr) return -s->rerr;
    if (s->reof) return 0;
    if (!eng_ur_rwant(u, s->want) && !s->rarmed) return -ENOTSUP;
    return -EAGAIN;
}

/* Copy up to cap queued bytes of fd into dst (oldest first), giving emptied buffers back; a queue
 * left with data is reported again at the next wait. Returns the bytes copied. */
static size_t eng_ur_recv_copy(eng_uring *u, int fd, char *dst, size_t cap) {
    eng_ufd *s;
    size_t done = 0;
    if (fd < 0 || fd >= u->nfds) return 0;
    s = &u->fds[fd];
    while (done < cap && s->qhead >= 0) {
        int bid = s->qhead;
        size_t left = u->blen[bid] - s->qoff, k = cap - done;
        if (k > left) k = left;
        memcpy(dst + done, u->baddr[bid] + s->qoff, k);
        done += k;
        s->qoff += (uint32_t)k;
        if (s->qoff == u->blen[bid]) {
            s->qhead = u->bnext[bid];
            if (s->qhead < 0) s->qtail = -1;
            s->qoff = 0;
            eng_ur_give(u, (unsigned)bid);
        }
    }
    s->qbytes -= done;
    eng_ur_unstarve(u);
    if ((s->qbytes || s->reof || s->rerr) && eng_ur_rwant(u, s->want)) eng_ur_signal(u, fd);
    return done;
}

/* Lend the head buffer of fd's queue to a reader that hands it on without a copy: it leaves the
 * queue (what is queued behind it is reported again) and stays out of the kernel's ring until
 * eng_ur_recv_return. Returns its bytes (0: nothing queued), *ptr where they are, *bid its id. */
static size_t eng_ur_recv_lend(eng_uring *u, int fd, char **ptr, unsigned *bid) {
    eng_ufd *s;
    int b;
    size_t n;
    if (fd < 0 || fd >= u->nfds) return 0;
    s = &u->fds[fd];
    b = s->qhead;
    if (b < 0) return 0;
    n = u->blen[b] - s->qoff;
    *ptr = u->baddr[b] + s->qoff;
    *bid = (unsigned)b;
    s->qbytes -= n;
    s->qhead = u->bnext[b];
    if (s->qhead < 0) s->qtail = -1;
    s->qoff = 0;
    if ((s->qbytes || s->reof || s->rerr) && eng_ur_rwant(u, s->want)) eng_ur_signal(u, fd);
    return n;
}

/* A lent buffer comes back and goes to the kernel. With swap != NULL its memory stays the
 * caller's (someone kept a view of it) and the kernel gets swap, memory of the same size, under
 * the same id. Returns the memory the buffer had. */
static char *eng_ur_recv_return(eng_uring *u, unsigned bid, char *swap) {
    char *old;
    if (bid >= u->nbufs || !u->bheld[bid]) return NULL;
    old = u->baddr[bid];
    if (swap != NULL) u->baddr[bid] = swap;
    eng_ur_give(u, bid);
    eng_ur_unstarve(u);
    return old;
}

/* --- completion sends: the writer (a transport) keeps one send request in flight per fd, with the
 * buffers it queued since; the kernel sends them at the next io_uring_enter (the iteration's
 * sends go in one system call with its wait) and the result is reported as a WRITE event. The
 * buffers must stay alive and unchanged until then, or until eng_poller_send_cancel returns. */

/* Room for n iovecs of fd's next send request; NULL: out of memory. */
static struct iovec *eng_ur_send_iov(eng_uring *u, int fd, int n) {
    eng_ufd *s;
    if (fd < 0 || eng_ur_fds_ensure(u, fd) < 0) return NULL;
    s = &u->fds[fd];
    if (s->siov_cap < n) {
        int cap = s->siov_cap ? s->siov_cap : 8;
        struct iovec *v;
        while (cap < n) cap *= 2;
        v = (struct iovec *)realloc(s->siov, sizeof(struct iovec) * (size_t)cap);
        if (v == NULL) return NULL;
        s->siov = v;
        s->siov_cap = cap;
    }
    return s->siov;
}

/* Queue a send of fd's first n iovecs (submitted with the next wait). 0 or -errno. */
static int eng_ur_send(eng_uring *u, int fd, int n, int msg_flags) {
    eng_ufd *s;
    struct io_uring_sqe *sqe;
    if (!u->recv_on || fd < 0 || fd >= u->nfds || n < 1) return -EINVAL;
    s = &u->fds[fd];
    if (s->sarmed || s->sdone) return -EBUSY;
    sqe = eng_ur_sqe(u);
    if (sqe == NULL) return -EAGAIN;
    s->sseq = (s->sseq + 1) & ENG_UR_SEQ_MASK;
    sqe->fd = fd;
    sqe->msg_flags = (unsigned)msg_flags;
    if (n == 1) {
        sqe->opcode = IORING_OP_SEND;
        sqe->addr = (uint64_t)(uintptr_t)s->siov[0].iov_base;
        sqe->len = (unsigned)s->siov[0].iov_len;
    } else {
        memset(&s->smsg, 0, sizeof(s->smsg));
        s->smsg.msg_iov = s->siov;
        s->smsg.msg_iovlen = (size_t)n;
        sqe->opcode = IORING_OP_SENDMSG;
        sqe->addr = (uint64_t)(uintptr_t)&s->smsg;
        sqe->len = 1;
    }
    sqe->user_data = eng_ur_sud(fd, s->sseq);
    s->sarmed = 1;
    return 0;
}

/* 1 and *res (bytes sent or -errno) when fd's send request completed; 0 while it is in flight. */
static int eng_ur_send_result(eng_uring *u, int fd, ssize_t *res) {
    eng_ufd *s;
    if (fd < 0 || fd >= u->nfds) return 0;
    s = &u->fds[fd];
    if (!s->sdone) return 0;
    s->sdone = 0;
    *res = s->sres;
    return 1;
}

/* End fd's send request now (abort, close): when this returns the kernel no longer reads its
 * buffers. A request not yet submitted is submitted first, so that what the socket takes at once
 * is sent, as a send(2) made at write() time would have; the rest is cancelled (in the
 * io_uring_enter made here; a completion it posts is dropped). */
static void eng_ur_send_cancel(eng_uring *u, int fd) {
    eng_ufd *s;
    struct io_uring_sqe *sqe;
    if (fd < 0 || fd >= u->nfds) return;
    s = &u->fds[fd];
    s->sdone = 0;
    if (!s->sarmed) return;
    (void)eng_ur_flush(u);
    sqe = eng_ur_sqe(u);
    if (sqe != NULL) eng_ur_prep_cancel(sqe, eng_ur_sud(fd, s->sseq));
    (void)eng_ur_flush(u);
    s->sarmed = 0;
}

/* fd's reader is gone (its transport closed): cancel its request, drop its queue. */
static void eng_ur_recv_forget(eng_uring *u, int fd) {
    eng_ufd *s;
    if (!u->nbufs || fd < 0 || fd >= u->nfds) return;
    s = &u->fds[fd];
    if (s->rarmed && eng_ur_cancel_recv(u, fd) == 0) (void)eng_ur_flush(u);
    s->rarmed = 0;
    s->rforget = s->rseq;
    s->rstarved = 0;
    eng_ur_queue_drop(u, s);
    eng_ur_accept_drop(s);
    eng_ur_unstarve(u);
    eng_ur_send_cancel(u, fd);
}

/* The listener stopped accepting (paused, or its server closing): completions of its request
 * that a system call since the last wait posted (a flush runs the kernel's task work, where the
 * request accepts) are not reaped yet; their fds are queued now, the completions left to be
 * ignored, so that the loop serves them rather than the reaper closing them after the listener
 * is forgotten. Only this thread posts to the ring (DEFER_TASKRUN), so the CQ holds still. */
static void eng_ur_accept_collect(eng_uring *u, int lfd, eng_ufd *s) {
    unsigned head = *u->cq_head;
    unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
    unsigned mask = *u->cq_mask;
    for (; head != tail; head++) {
        struct io_uring_cqe *cqe = &u->cqes[head & mask];
        uint64_t ud = cqe->user_data;
        if (ud == ENG_UR_UD_IGNORE || (ud & ENG_UR_UD_ACCEPT) != ENG_UR_UD_ACCEPT) continue;
        if ((int)(uint32_t)ud != lfd || cqe->res < 0) continue;
        if (!eng_ur_owned(s, (uint32_t)(ud >> 32) & ENG_UR_SEQ_MASK)) continue;
        if (eng_ur_aq_push(s, cqe->res) < 0) continue;   /* left to the reaper, which closes it */
        u->st_accepts++;
        cqe->user_data = ENG_UR_UD_IGNORE;   /* (the request was cancelled: nothing else to see) */
    }
}

/* The next fd accepted for listening fd lfd (non-blocking, close-on-exec; the caller owns it);
 * -EAGAIN: none yet; -ENOTSUP: lfd is not served by an accept request (call accept4(2));
 * another -errno: the error accept4(2) would have met (the request is armed again at the next
 * wait if the listener still wants it). */
static int eng_ur_accept_next(eng_uring *u, int lfd) {
    eng_ufd *s;
    int fd;
    if (!u->recv_on || lfd < 0 || lfd >= u->nfds) return -ENOTSUP;
    s = &u->fds[lfd];
    if (!s->an && s->racc && !eng_ur_awant(u, s->want)) eng_ur_accept_collect(u, lfd, s);
    if (s->an) {
        fd = s->aq[s->ahead];
        s->ahead = (s->ahead + 1) % s->acap;
        s->an--;
        if (s->an) eng_ur_signal(u, lfd);   /* the rest are reported again at the next wait */
        else if (s->afull) {
            s->afull = 0;
            eng_ur_push_rearm(u, lfd);
        }
        return fd;
    }
    if (s->rerr) {
        int err = s->rerr;
        s->rerr = 0;
        if (eng_ur_awant(u, s->want)) eng_ur_push_rearm(u, lfd);
        return -err;
    }
    if (!eng_ur_awant(u, s->want) && !(s->rarmed && s->racc)) return -ENOTSUP;
    return -EAGAIN;
}

#endif
