/* Preloaded into a dobj server (LD_PRELOAD) by bench/memory/profile.sh: on
 * SIGUSR2 it writes jemalloc's statistics (malloc_stats_print, with the live
 * blocks per size class) to $JEMALLOC_DUMP.stats and, when the server runs
 * with MALLOC_CONF=prof:true, a heap profile of the live blocks to
 * $JEMALLOC_DUMP.prof. A measuring aid, not part of dobj. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void malloc_stats_print(void (*write)(void*, const char*), void* opaque, const char* opts);
extern int mallctl(const char* name, void* old, size_t* old_len, void* new_value, size_t new_len);

static void write_to(void* file, const char* text) { fputs(text, (FILE*)file); }

static void* wait_for_signals(void* unused) {
  (void)unused;
  const char* base = getenv("JEMALLOC_DUMP");
  if (!base) base = "/tmp/jemalloc";
  char stats[4096], prof[4096];
  snprintf(stats, sizeof stats, "%s.stats", base);
  snprintf(prof, sizeof prof, "%s.prof", base);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    FILE* f = fopen(stats, "w");
    if (f) {
      malloc_stats_print(write_to, f, "a"); /* merged arenas, not each one */
      fclose(f);
    }
    const char* path = prof;
    mallctl("prof.dump", NULL, NULL, (void*)&path, sizeof path); /* fails unless prof:true */
    f = fopen(stats, "a"); /* a line the script waits for: both files are complete */
    if (f) {
      fputs("\njemalloc_dump: done\n", f);
      fclose(f);
    }
  }
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  /* Blocked here, before the server makes its threads (they inherit the
   * mask), so SIGUSR2 reaches only the thread that waits for it. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  pthread_t thread;
  pthread_create(&thread, NULL, wait_for_signals, NULL);
  pthread_detach(thread);
}
