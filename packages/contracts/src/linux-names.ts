/**
 * The names the agent's Linux executors accept, and investigations check
 * before they propose one: a name that fails here is never a target.
 */
export const LINUX_NAMES = {
  /** An account, as useradd allows it (a trailing `$` for machine accounts). */
  user: /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/,
  /** A file in /etc/cron.d that cron reads: no dot files, which cron skips. */
  cronFile: /^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,254}$/,
  /** A startup file or drop-in, dot files (`.bashrc`) included; never `.` or `..` (paths are normalized first). */
  startupFile: /^[A-Za-z0-9_.][A-Za-z0-9_.@+-]{0,254}$/,
  /** A systemd unit the agent stops or removes (`\` for systemd's escapes, `\x2d`). */
  unit: /^[A-Za-z0-9@_:][A-Za-z0-9@._:\\-]{0,248}\.(service|socket|timer|path)$/,
} as const;
