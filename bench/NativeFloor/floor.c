/*
 * The native floor (issue 16): the least a heartbeat server can do on this machine, in C with no
 * runtime. One thread, one epoll set, non-blocking sockets; each readable socket is read once into
 * one static buffer (what is there, in one call), its JSON lines are scanned by bytes as
 * bench/FloorServer does ("type": then "seq":), a heartbeat is answered with
 * {"type":1,"timestamp":now,"seq":S} in one write, a data line is echoed as it came, and a peer
 * silent for --timeout gets the error notice FloorServer writes and is closed.
 *
 * Deadlines: the timeout is the same for every connection, so the connections are kept in one
 * list ordered by their last frame (a frame moves its connection to the tail, O(1)); the head is
 * the next to time out. The list is checked after every wake-up, and epoll_wait sleeps at most
 * until the head is due, rounded up to the next millisecond: a silent peer is closed at most
 * ~1 ms late, without the 1,000 idle wake-ups a second of a fixed 1 ms sweep when frames keep the
 * loop awake anyway.
 *
 * Not here, on purpose: backpressure (a short or refused write is dropped, as FloorServer's
 * Socket.Send with its error ignored), TLS, limits, logs. Lines longer than 64 KiB close the
 * connection, as FloorServer's.
 *
 *   floor [--port 0] [--timeout 6s] [--max-runtime 900s] [--edge]
 *
 * --edge registers sockets edge-triggered (EPOLLET; a full read buffer is read again until a short
 * read); the default is level-triggered. Prints "READY port=P" once listening. SIGUSR1 prints one
 * "STATS" line of cumulative counters (epoll_wait calls, calls that returned events, events,
 * reads, frames); SIGTERM, SIGINT or --max-runtime end it.
 *
 * Built by bench/run-load.sh: gcc -O2 -o bench/NativeFloor/floor bench/NativeFloor/floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUFFER (64 * 1024)
#define MAX_FRAME (64 * 1024)
#define MAX_EVENTS 1024
#define NONE (-1)

struct conn {
    int64_t last_frame_ns;   /* monotonic; the deadline is last_frame_ns + timeout */
    int prev, next;          /* the deadline list, by fd; NONE at the ends */
    int open;
    int partial_length;
    char *partial;           /* a line not yet ended, only while one is pending (MAX_FRAME + 1 bytes) */
};

static struct conn *conns;
static int conn_capacity;
static int oldest = NONE, newest = NONE;
static int64_t timeout_ns = 6000000000LL;
static int edge_triggered;
static int epoll_fd;
static char read_buffer[READ_BUFFER];

static volatile sig_atomic_t stop_requested, stats_requested;
static uint64_t epoll_waits, wakeups, events_seen, reads, frames, heartbeats, accepted, timed_out;

static int64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void on_signal(int signal_number) {
    if (signal_number == SIGUSR1) stats_requested = 1;
    else stop_requested = 1;
}

static void unlink_deadline(int fd) {
    struct conn *c = &conns[fd];
    if (c->prev != NONE) conns[c->prev].next = c->next; else oldest = c->next;
    if (c->next != NONE) conns[c->next].prev = c->prev; else newest = c->prev;
    c->prev = c->next = NONE;
}

static void append_deadline(int fd) {
    struct conn *c = &conns[fd];
    c->prev = newest;
    c->next = NONE;
    if (newest != NONE) conns[newest].next = fd; else oldest = fd;
    newest = fd;
}

static void close_conn(int fd) {
    struct conn *c = &conns[fd];
    if (!c->open) return;
    unlink_deadline(fd);
    free(c->partial);
    c->partial = NULL;
    c->partial_length = 0;
    c->open = 0;
    close(fd);   /* also takes it out of the epoll set */
}

/* Writes value in decimal at out; returns the bytes written. */
static int format_long(char *out, long long value) {
    char digits[24];
    int n = 0, written = 0;
    unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    if (value < 0) out[written++] = '-';
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) out[written++] = digits[--n];
    return written;
}

/* The integer right after "name":, as Utf8Parser reads it (optional minus, digits); 0 if none. */
static int parse_long(const char *at, const char *end, long long *value) {
    int negative = 0;
    long long v = 0;
    if (at < end && *at == '-') { negative = 1; at++; }
    if (at >= end || *at < '0' || *at > '9') return 0;
    while (at < end && *at >= '0' && *at <= '9') v = v * 10 + (*at++ - '0');
    *value = negative ? -v : v;
    return 1;
}

#define APPEND(out, n, literal) (memcpy((out) + (n), (literal), sizeof(literal) - 1), (n) + (int)sizeof(literal) - 1)

/* One line without its newline; line[length] is writable and is the newline (or room for one). */
static void on_line(int fd, char *line, int length) {
    frames++;
    const char *end = line + length;
    const char *type = memmem(line, (size_t)length, "\"type\":", 7);
    if (type == NULL || type + 7 >= end) return;
    if (type[7] == '0') {
        char response[96];
        int n = APPEND(response, 0, "{\"type\":1,\"timestamp\":");
        n += format_long(response + n, (long long)time(NULL));
        const char *seq_at = memmem(line, (size_t)length, "\"seq\":", 6);
        long long seq;
        if (seq_at != NULL && parse_long(seq_at + 6, end, &seq)) {
            n = APPEND(response, n, ",\"seq\":");
            n += format_long(response + n, seq);
        }
        n = APPEND(response, n, "}\n");
        heartbeats++;
        (void)send(fd, response, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else if (type[7] == '2') {
        line[length] = '\n';
        (void)send(fd, line, (size_t)length + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

/* Handles the complete lines in data; keeps an unfinished tail. Returns the lines handled, -1 when the peer must be closed. */
static int consume(int fd, char *data, int length) {
    int lines = 0;
    struct conn *c = &conns[fd];
    while (length > 0) {
        char *newline = memchr(data, '\n', (size_t)length);
        if (newline == NULL) {
            if (c->partial_length + length > MAX_FRAME) return -1;
            if (c->partial == NULL && (c->partial = malloc(MAX_FRAME + 1)) == NULL) return -1;
            memcpy(c->partial + c->partial_length, data, (size_t)length);
            c->partial_length += length;
            return lines;
        }
        int line = (int)(newline - data);
        lines++;
        if (c->partial_length > 0) {
            if (c->partial_length + line > MAX_FRAME) return -1;
            memcpy(c->partial + c->partial_length, data, (size_t)line);
            on_line(fd, c->partial, c->partial_length + line);
            free(c->partial);
            c->partial = NULL;
            c->partial_length = 0;
        } else on_line(fd, data, line);
        data = newline + 1;
        length -= line + 1;
    }
    return lines;
}

static void on_readable(int fd) {
    if (fd >= conn_capacity || !conns[fd].open) return;
    while (1) {
        ssize_t read_bytes = recv(fd, read_buffer, READ_BUFFER, 0);
        reads++;
        if (read_bytes < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (read_bytes <= 0) { close_conn(fd); return; }
        int lines = consume(fd, read_buffer, (int)read_bytes);
        if (lines < 0) { close_conn(fd); return; }
        if (lines > 0) {
            /* A complete line is a frame (as FloorServer, which stamps each line; one clock read per read is
             * enough). Stamped at the read, not at the wake-up: a frame that arrived after the wake-up, while
             * this thread was preempted, would get a deadline earlier than its own arrival + timeout. */
            conns[fd].last_frame_ns = monotonic_ns();
            unlink_deadline(fd);
            append_deadline(fd);
        }
        /* Level-triggered: what is left raises the next epoll_wait. Edge-triggered: a full buffer may hide more. */
        if (!edge_triggered || read_bytes < READ_BUFFER || !conns[fd].open) return;
    }
}

static void on_acceptable(int listener, int64_t now) {
    static int reported_full;
    while (1) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && !reported_full) {
                fprintf(stderr, "floor: accept: %s (raise the open-files limit)\n", strerror(errno));
                reported_full = 1;
            }
            return;   /* EAGAIN: accepted all; anything else: try again on the next wake-up */
        }
        if (fd >= conn_capacity) { close(fd); continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event event = { .events = EPOLLIN | (edge_triggered ? EPOLLET : 0), .data.fd = fd };
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) { close(fd); continue; }
        struct conn *c = &conns[fd];
        c->open = 1;
        c->last_frame_ns = now;
        c->partial = NULL;
        c->partial_length = 0;
        append_deadline(fd);
        accepted++;
    }
}

/* Closes every connection whose deadline has passed, with FloorServer's notice. */
static void sweep(int64_t now) {
    while (oldest != NONE && conns[oldest].last_frame_ns + timeout_ns <= now) {
        int fd = oldest;
        long long idle_ms = (now - conns[fd].last_frame_ns) / 1000000;
        char notice[160];
        int n = APPEND(notice, 0, "{\"type\":3,\"timestamp\":");
        n += format_long(notice + n, (long long)time(NULL));
        n = APPEND(notice, n, ",\"data\":\"heartbeat-timeout: no valid frame for ");
        n += format_long(notice + n, idle_ms);
        n = APPEND(notice, n, " ms\"}\n");
        (void)send(fd, notice, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
        close_conn(fd);
        timed_out++;
    }
}

/* Milliseconds epoll_wait may sleep: until the oldest connection is due, rounded up (1 s with none). */
static int wait_ms(int64_t now) {
    if (oldest == NONE) return 1000;
    int64_t until = conns[oldest].last_frame_ns + timeout_ns - now;
    if (until <= 0) return 0;
    int64_t ms = (until + 999999) / 1000000;
    return ms > 1000 ? 1000 : (int)ms;
}

static void print_stats(void) {
    printf("STATS t_ns=%lld epoll_waits=%llu wakeups=%llu events=%llu reads=%llu frames=%llu heartbeats=%llu accepted=%llu timed_out=%llu\n",
           (long long)monotonic_ns(), (unsigned long long)epoll_waits, (unsigned long long)wakeups,
           (unsigned long long)events_seen, (unsigned long long)reads, (unsigned long long)frames,
           (unsigned long long)heartbeats, (unsigned long long)accepted, (unsigned long long)timed_out);
    fflush(stdout);
}

static double seconds_argument(const char *text) {
    char *end;
    double value = strtod(text, &end);
    if (end == text) { fprintf(stderr, "floor: bad duration '%s'\n", text); exit(2); }
    if (strcmp(end, "ms") == 0) return value / 1000;
    if (strcmp(end, "m") == 0) return value * 60;
    if (*end == 0 || strcmp(end, "s") == 0) return value;
    fprintf(stderr, "floor: bad duration '%s'\n", text);
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0;
    double max_runtime_s = 900;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--edge") == 0) edge_triggered = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) timeout_ns = (int64_t)(seconds_argument(argv[++i]) * 1e9);
        else if (i + 1 < argc && strcmp(argv[i], "--max-runtime") == 0) max_runtime_s = seconds_argument(argv[++i]);
        else { fprintf(stderr, "floor: unknown option %s\nfloor [--port 0] [--timeout 6s] [--max-runtime 900s] [--edge]\n", argv[i]); return 2; }
    }

    /* 19,000 connections need more than the usual soft limit of 1,024 descriptors. */
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) perror("floor: setrlimit");
    getrlimit(RLIMIT_NOFILE, &files);
    conn_capacity = files.rlim_cur > 4 * 1024 * 1024 ? 4 * 1024 * 1024 : (int)files.rlim_cur;
    conns = calloc((size_t)conn_capacity, sizeof *conns);
    if (conns == NULL) { perror("floor: calloc"); return 1; }

    struct sigaction action = { .sa_handler = on_signal };   /* no SA_RESTART: epoll_wait returns EINTR */
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4096) != 0) {
        perror("floor: bind/listen");
        return 1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event listen_event = { .events = EPOLLIN, .data.fd = listener };
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &listen_event);
    printf("READY port=%d mode=%s open-files=%d\n", ntohs(address.sin_port), edge_triggered ? "edge" : "level", conn_capacity);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    int64_t stop_at = monotonic_ns() + (int64_t)(max_runtime_s * 1e9);
    int64_t now = monotonic_ns();
    while (!stop_requested) {
        int n = epoll_wait(epoll_fd, events, MAX_EVENTS, wait_ms(now));
        epoll_waits++;
        now = monotonic_ns();
        if (n < 0) {
            if (errno != EINTR) { perror("floor: epoll_wait"); return 1; }
            n = 0;
        }
        if (n > 0) { wakeups++; events_seen += (uint64_t)n; }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == listener) on_acceptable(listener, now);
            else on_readable(events[i].data.fd);
        }
        if (n > 0) now = monotonic_ns();
        sweep(now);
        if (stats_requested) { stats_requested = 0; print_stats(); }
        if (now >= stop_at) break;
    }
    print_stats();
    for (int fd = 0; fd < conn_capacity; fd++) close_conn(fd);
    close(listener);
    return 0;
}
