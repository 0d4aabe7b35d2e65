/*
 * The proxy benchmark's backend: answers every HTTP/1.x request with "200 ok" (2-byte body),
 * keeping connections alive unless the client says "Connection: close". One thread, epoll,
 * non-blocking sockets, pipelining handled (every complete request head in the buffer gets a
 * response, in order). Requests with a body are not expected (the benchmark sends GETs): a body
 * would be read as the next request's head.
 *
 *   backend PORT        listens on 127.0.0.1:PORT, prints "listening PORT" once it does
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
#define RESPONSE_LEN (sizeof(RESPONSE) - 1)
#define IN_CAP 16384
#define OUT_CAP 65536

struct conn {
  int fd;
  size_t in_len;
  size_t out_len;
  size_t out_off;
  int close_after;
  int polling_out;
  char in[IN_CAP];
  char out[OUT_CAP];
};

static void fail(const char *what) {
  perror(what);
  exit(1);
}

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Writes what is pending; returns -1 on a dead connection, 1 if some is left (wait for EPOLLOUT). */
static int flush(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 1;
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out_len = c->out_off = 0;
  return 0;
}

/* "Connection: close" in a request head [start, end). */
static int wants_close(const char *start, const char *end) {
  static const char NAME[] = "\nconnection:";
  size_t nl = sizeof(NAME) - 1;
  for (const char *p = start; p + nl <= end; p++) {
    if (strncasecmp(p, NAME, nl) != 0) continue;
    const char *v = p + nl;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    return end - v >= 5 && strncasecmp(v, "close", 5) == 0;
  }
  return 0;
}

/* Answers every complete request head in the input buffer; returns -1 to drop the connection. */
static int serve(struct conn *c) {
  size_t start = 0;
  for (;;) {
    char *head = c->in + start;
    char *stop = memmem(head, c->in_len - start, "\r\n\r\n", 4);
    if (!stop) break;
    if (c->out_len + RESPONSE_LEN > OUT_CAP) break; /* answer the rest once this is written */
    memcpy(c->out + c->out_len, RESPONSE, RESPONSE_LEN);
    c->out_len += RESPONSE_LEN;
    if (wants_close(head, stop)) c->close_after = 1;
    start = (size_t)(stop + 4 - c->in);
    if (c->close_after) break;
  }
  if (start > 0) {
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
  }
  if (c->in_len == IN_CAP) return -1; /* a head larger than the buffer */
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0) fail("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0) fail("bind");
  if (listen(lfd, 4096) < 0) fail("listen");
  int ep = epoll_create1(0);
  if (ep < 0) fail("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) fail("epoll_ctl");
  printf("listening %s\n", argv[1]);
  fflush(stdout);

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (!c) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          struct conn *nc = malloc(sizeof(struct conn));
          if (!nc) {
            close(fd);
            continue;
          }
          nc->fd = fd;
          nc->in_len = nc->out_len = nc->out_off = 0;
          nc->close_after = 0;
          nc->polling_out = 0;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
            close(fd);
            free(nc);
          }
        }
        continue;
      }
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        drop(ep, c);
        continue;
      }
      int dead = 0;
      if (events[i].events & EPOLLOUT) {
        int r = flush(c);
        if (r < 0) dead = 1;
      }
      if (!dead && (events[i].events & (EPOLLIN | EPOLLRDHUP))) {
        for (;;) {
          if (c->out_len > 0) break; /* backpressure: read more once the answers are written */
          ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
          if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) dead = 1;
            break;
          }
          if (r == 0) {
            dead = 1;
            break;
          }
          c->in_len += (size_t)r;
          if (serve(c) < 0 || flush(c) < 0) {
            dead = 1;
            break;
          }
          if (c->close_after && c->out_len == 0) {
            dead = 1;
            break;
          }
          if ((size_t)r < IN_CAP) break; /* probably drained; level-triggered epoll says if not */
        }
      }
      if (!dead && c->out_len == 0 && c->in_len > 0) {
        /* Heads held back while output was pending. */
        if (serve(c) < 0 || flush(c) < 0) dead = 1;
      }
      if (!dead && c->close_after && c->out_len == 0) dead = 1;
      if (dead) {
        drop(ep, c);
        continue;
      }
      int want_out = c->out_len > 0;
      if (want_out != c->polling_out) {
        struct epoll_event mev = {.events = (want_out ? EPOLLOUT : EPOLLIN | EPOLLRDHUP), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &mev);
        c->polling_out = want_out;
      }
    }
  }
}
