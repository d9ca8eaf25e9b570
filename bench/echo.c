/* The physical floor of a round trip of `bytes` bytes between two processes
 * on this machine, for bench/large.R: a Unix socketpair echo. Per direction
 * the kernel copies the bytes twice (into the socket, out of it), and the
 * receiver writes them into memory allocated for that message (freshly
 * mapped, asked for huge pages), as a receiver that hands each message on as
 * a new object must.
 *
 *   echo BYTES REPS [SNDBUF]    prints one round trip time per line, in ms
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static char *fresh(size_t bytes) {
  char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k <= 0) die("write");
    p += k;
    n -= (size_t)k;
  }
}

static void recv_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k <= 0) die("read");
    p += k;
    n -= (size_t)k;
  }
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: echo BYTES REPS [SNDBUF]\n");
    return 2;
  }
  size_t bytes = strtoull(argv[1], NULL, 10);
  int reps = atoi(argv[2]);
  int buf = argc > 3 ? atoi(argv[3]) : 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
  if (buf > 0) {
    for (int i = 0; i < 2; i++) {
      setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
  }
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(sv[0]);
    for (int i = 0; i < reps; i++) {
      char *in = fresh(bytes);
      recv_all(sv[1], in, bytes);
      send_all(sv[1], in, bytes);
      munmap(in, bytes);
    }
    _exit(0);
  }
  close(sv[1]);
  char *out = fresh(bytes);
  memset(out, 1, bytes);
  for (int i = 0; i < reps; i++) {
    double t0 = now_ms();
    send_all(sv[0], out, bytes);
    char *back = fresh(bytes);
    recv_all(sv[0], back, bytes);
    printf("%.3f\n", now_ms() - t0);
    munmap(back, bytes);
  }
  waitpid(child, NULL, 0);
  return 0;
}
