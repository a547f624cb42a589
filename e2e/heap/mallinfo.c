/* What glibc's heap holds over time, for docs/performance.md (run 38): preloaded into
 * `regie run`, a thread appends every two seconds the main arena's size, what of it is in use,
 * what is free, what is mapped apart, and the resident set to /tmp/regie-mallinfo.<pid>.
 * A diagnostic, not shipped: the operator itself never calls into glibc (the workspace forbids
 * unsafe code).
 *
 *   gcc -shared -fPIC -O2 -o /tmp/libmallinfo.so e2e/heap/mallinfo.c -lpthread
 *   printf '#!/bin/sh\nexport LD_PRELOAD=/tmp/libmallinfo.so\nexec %s "$@"\n' \
 *     "$PWD/target/release/regie" > /tmp/regie-mallinfo && chmod +x /tmp/regie-mallinfo
 *   REGIE_BIN=/tmp/regie-mallinfo target/release/bench-operator 1000 16 --memory-only
 *
 * The extra thread is idle between samples; the benchmark counts it among the threads. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void *sample(void *unused) {
  (void)unused;
  char path[64];
  snprintf(path, sizeof path, "/tmp/regie-mallinfo.%d", (int)getpid());
  for (;;) {
    sleep(2);
    struct mallinfo2 m = mallinfo2();
    long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
      if (fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
      fclose(statm);
    }
    FILE *out = fopen(path, "a");
    if (out) {
      fprintf(out, "%ld arena=%zu inuse=%zu free=%zu mapped=%zu top=%zu rss_kib=%ld\n",
              (long)time(NULL), m.arena, m.uordblks, m.fordblks, m.hblkhd, m.keepcost,
              resident * (sysconf(_SC_PAGESIZE) / 1024));
      fclose(out);
    }
  }
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  pthread_t thread;
  pthread_create(&thread, NULL, sample, NULL);
}
