/* Socket option numbers and the layout of struct tcp_info, as this build's headers define them,
 * for engine.tuning (engine._loop.SOCKOPTS / TCP_INFO_FIELDS).
 *
 * Python's socket module does not name every option (no TCP_NOPUSH on BSD/macOS, for one), and
 * struct tcp_info is kernel-specific and grows over time: Linux appends members (tcpi_segs_out
 * since 4.2, tcpi_data_segs_out since 4.6, ...) and the kernel copies min(asked, its size) bytes,
 * while FreeBSD's struct shares only the first members. So the numbers and offsets come from the
 * headers, for the options and members the CMake probes found, never from a table keyed by
 * platform name. This file is its own compilation unit because <linux/tcp.h> (which carries the
 * full struct; glibc's <netinet/tcp.h> has an old copy) cannot be mixed with <netinet/tcp.h>. */
#include "probes.h"
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#if defined(HAVE_LINUX_TCP_H)
#  include <linux/tcp.h>
#elif defined(HAVE_NETINET_TCP_H)
#  include <netinet/tcp.h>
#endif

const eng_probe eng_probe_sockopts[] = {
#ifdef HAVE_TCP_CORK
    {"TCP_CORK", TCP_CORK},
#endif
#ifdef HAVE_TCP_NOPUSH
    {"TCP_NOPUSH", TCP_NOPUSH},
#endif
#ifdef HAVE_TCP_NOTSENT_LOWAT
    {"TCP_NOTSENT_LOWAT", TCP_NOTSENT_LOWAT},
#endif
#ifdef HAVE_TCP_QUICKACK
    {"TCP_QUICKACK", TCP_QUICKACK},
#endif
#ifdef HAVE_TCP_KEEPIDLE
    {"TCP_KEEPIDLE", TCP_KEEPIDLE},
#endif
#ifdef HAVE_TCP_KEEPALIVE
    {"TCP_KEEPALIVE", TCP_KEEPALIVE},
#endif
#ifdef HAVE_TCP_KEEPINTVL
    {"TCP_KEEPINTVL", TCP_KEEPINTVL},
#endif
#ifdef HAVE_TCP_KEEPCNT
    {"TCP_KEEPCNT", TCP_KEEPCNT},
#endif
#ifdef HAVE_TCP_INFO
    {"TCP_INFO", TCP_INFO},
#endif
#ifdef HAVE_SO_REUSEPORT
    {"SO_REUSEPORT", SO_REUSEPORT},
#endif
#ifdef HAVE_SO_REUSEPORT_LB
    {"SO_REUSEPORT_LB", SO_REUSEPORT_LB},
#endif
    {0, 0}
};

#define ENG_TCPI_FIELD(m) {#m, (int)offsetof(struct tcp_info, tcpi_##m), \
                           (int)sizeof(((struct tcp_info *)0)->tcpi_##m)}

const eng_field eng_tcp_info_fields[] = {
#ifdef HAVE_TCP_INFO_SND_MSS
    ENG_TCPI_FIELD(snd_mss),
#endif
#ifdef HAVE_TCP_INFO_RTT
    ENG_TCPI_FIELD(rtt),
#endif
#ifdef HAVE_TCP_INFO_SND_CWND
    ENG_TCPI_FIELD(snd_cwnd),
#endif
#ifdef HAVE_TCP_INFO_TOTAL_RETRANS
    ENG_TCPI_FIELD(total_retrans),
#endif
#ifdef HAVE_TCP_INFO_BYTES_ACKED
    ENG_TCPI_FIELD(bytes_acked),
#endif
#ifdef HAVE_TCP_INFO_SEGS_OUT
    ENG_TCPI_FIELD(segs_out),
#endif
#ifdef HAVE_TCP_INFO_DATA_SEGS_OUT
    ENG_TCPI_FIELD(data_segs_out),
#endif
#ifdef HAVE_TCP_INFO_NOTSENT_BYTES
    ENG_TCPI_FIELD(notsent_bytes),
#endif
    {0, 0, 0}
};
