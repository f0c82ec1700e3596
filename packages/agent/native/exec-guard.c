/*
 * quell-exec-guard: the agent's exec permission check. It asks the kernel
 * (fanotify, FAN_OPEN_EXEC_PERM) to hold every execution of a file on the
 * mounts named on its command line until it answers, and answers from a
 * cache of verdicts by file identity, or by asking the agent over its pipes
 * (a file allowed is marked so that the kernel does not hold it again until
 * it is modified or the block list changes):
 *
 *   to the agent (stdout):   ask <id> <fd> <pid>\n   -- read the file at /proc/<this pid>/fd/<fd>
 *   from the agent (stdin):  <id> allow|deny\n       -- the verdict, cached for that file as it is now
 *                            flush\n                  -- forget every verdict given (the block list changed)
 *
 * Up to 64 executions are held at once, each answered as soon as its verdict
 * comes (a large file being hashed holds up no other). The agent's own
 * children are let through unasked (the agent may be busy starting them),
 * and so is every execution the agent does not answer within two seconds:
 * the guard never stops the endpoint on its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_TIMEOUT_MS 2000
#define CACHE_SLOTS 8192
/* Executions held at once while the agent looks at their files. */
#define MAX_PENDING 64

struct verdict { dev_t dev; ino_t ino; off_t size; struct timespec mtime, ctime; int used, allow; };
static struct verdict cache[CACHE_SLOTS];
static pid_t agent;
static char line[256];
static size_t line_length;

static struct verdict *slot_of(const struct stat *st) {
  return &cache[(st->st_ino * 2654435761u ^ st->st_dev) % CACHE_SLOTS];
}

static int cached(const struct stat *st, int *allow) {
  const struct verdict *v = slot_of(st);
  if (!v->used || v->dev != st->st_dev || v->ino != st->st_ino || v->size != st->st_size
      || v->mtime.tv_sec != st->st_mtim.tv_sec || v->mtime.tv_nsec != st->st_mtim.tv_nsec
      || v->ctime.tv_sec != st->st_ctim.tv_sec || v->ctime.tv_nsec != st->st_ctim.tv_nsec) return 0;
  *allow = v->allow;
  return 1;
}

static void remember(const struct stat *st, int allow) {
  struct verdict *v = slot_of(st);
  *v = (struct verdict){ st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim, 1, allow };
}

static pid_t parent_of(pid_t pid) {
  char path[64], buffer[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  if (n <= 0) return -1;
  buffer[n] = 0;
  /* pid (comm) state ppid: the command may hold spaces and parentheses, so read from the last one. */
  char *end = strrchr(buffer, ')');
  return end ? (pid_t)strtol(end + 3, NULL, 10) : -1;
}

/* Reads what the agent sent into `line`, one line at a time; 1 when a whole line is there, 0 when not yet, -1 when the agent is gone. */
static int read_line(void) {
  for (;;) {
    char *newline = memchr(line, '\n', line_length);
    if (newline) return 1;
    if (line_length == sizeof line - 1) line_length = 0; /* an overlong line is dropped */
    ssize_t n = read(STDIN_FILENO, line + line_length, sizeof line - 1 - line_length);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    line_length += (size_t)n;
  }
}

static void consume_line(void) {
  char *newline = memchr(line, '\n', line_length);
  size_t used = (size_t)(newline - line) + 1;
  memmove(line, line + used, line_length - used);
  line_length -= used;
}

/* An execution held until the agent answers for it. */
struct pending { unsigned long id; int fd; struct stat st; long long deadline; unsigned generation; int used; };
static struct pending pending[MAX_PENDING];
static int pending_count;
/* Counts the agent's flushes: a verdict given against a block list older than the last flush is used once, not remembered. */
static unsigned generation;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void respond(int group, int fd, int allow) {
  struct fanotify_response response = { fd, allow ? FAN_ALLOW : FAN_DENY };
  if (write(group, &response, sizeof response) < 0) perror("fanotify response");
  close(fd);
}

/*
 * Later executions of an allowed file are not even reported to the guard:
 * the kernel skips them (no round trip at all) until the file is modified,
 * which clears the mark, or the agent's block list changes (a flush).
 * Beyond the kernel's limit of marks, the cache answers instead.
 */
static void ignore_from_now_on(int group, int fd) {
  fanotify_mark(group, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_OPEN_EXEC_PERM, fd, NULL);
}

static void settle(int group, struct pending *held, int allow, int trusted) {
  if (trusted && held->generation == generation) {
    remember(&held->st, allow);
    if (allow) ignore_from_now_on(group, held->fd);
  }
  respond(group, held->fd, allow);
  held->used = 0;
  pending_count--;
}

/* Handles every whole line the agent has sent: verdicts for held executions, and flushes. */
static void handle_lines(int group) {
  int status;
  while ((status = read_line()) == 1) {
    unsigned long answered;
    char word[8];
    if (strncmp(line, "flush\n", 6) == 0) {
      memset(cache, 0, sizeof cache);
      /* Without FAN_MARK_MOUNT, a flush removes the marks on files only: the mounts stay guarded. */
      fanotify_mark(group, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL);
      generation++;
    } else if (sscanf(line, "%lu %7s", &answered, word) == 2) {
      for (int i = 0; i < MAX_PENDING; i++) {
        if (pending[i].used && pending[i].id == answered) {
          settle(group, &pending[i], strcmp(word, "deny") != 0, 1);
          break;
        }
      }
    }
    consume_line();
  }
  if (status < 0) exit(0); /* the agent is gone: closing the group lets every held execution through */
}

/* Lets through (and does not remember) every held execution the agent has not answered in time. */
static void expire(int group) {
  long long now = now_ms();
  for (int i = 0; i < MAX_PENDING; i++) if (pending[i].used && pending[i].deadline <= now) settle(group, &pending[i], 1, 0);
}

/* How long poll may wait: until the first held execution's time is up, or for ever. */
static int next_timeout(void) {
  long long first = -1;
  for (int i = 0; i < MAX_PENDING; i++) if (pending[i].used && (first < 0 || pending[i].deadline < first)) first = pending[i].deadline;
  if (first < 0) return -1;
  long long left = first - now_ms();
  return left > 0 ? (int)left : 0;
}

/* Holds an execution and asks the agent about its file; the main loop reads no more events while every slot is taken. */
static void ask(int fd, pid_t pid, const struct stat *st) {
  static unsigned long next_id;
  for (int i = 0; i < MAX_PENDING; i++) {
    if (pending[i].used) continue;
    pending[i] = (struct pending){ ++next_id, fd, *st, now_ms() + ANSWER_TIMEOUT_MS, generation, 1 };
    pending_count++;
    printf("ask %lu %d %d\n", pending[i].id, fd, pid);
    fflush(stdout);
    return;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: quell-exec-guard <mount>...\n");
    return 2;
  }
  agent = getppid();
  int group = fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (group < 0) {
    fprintf(stderr, "fanotify_init: %s\n", strerror(errno));
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    if (fanotify_mark(group, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, AT_FDCWD, argv[i]) < 0) {
      fprintf(stderr, "fanotify_mark %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
  }
  fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
  printf("ready\n");
  fflush(stdout);
  struct fanotify_event_metadata buffer[MAX_PENDING];
  for (;;) {
    /* While every slot holds an execution, the kernel keeps the next ones queued. */
    struct pollfd fds[2] = { { group, pending_count < MAX_PENDING ? POLLIN : 0, 0 }, { STDIN_FILENO, POLLIN, 0 } };
    if (poll(fds, 2, next_timeout()) < 0) continue;
    if (fds[1].revents) handle_lines(group);
    expire(group);
    if (!(fds[0].revents & POLLIN)) continue;
    /* Never more events than free slots: each read event is either answered now or held in one. */
    ssize_t length = read(group, buffer, (size_t)(MAX_PENDING - pending_count) * sizeof buffer[0]);
    if (length <= 0) continue;
    for (struct fanotify_event_metadata *event = buffer; FAN_EVENT_OK(event, length); event = FAN_EVENT_NEXT(event, length)) {
      if (event->vers != FANOTIFY_METADATA_VERSION || event->fd < 0) continue;
      int allow = 1;
      struct stat st;
      /* A remembered verdict first (the common case costs one fstat); the agent and its children are not asked. */
      if ((event->mask & FAN_OPEN_EXEC_PERM) && fstat(event->fd, &st) == 0 && !cached(&st, &allow) && event->pid != agent && parent_of(event->pid) != agent) {
        ask(event->fd, event->pid, &st);
        continue;
      }
      respond(group, event->fd, allow);
    }
  }
}
