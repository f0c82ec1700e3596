/**
 * Where cron jobs live: what the agent's evidence reads, what
 * investigations propose to remove, and what remove_scheduled_task accepts.
 */
export const CRON_LOCATIONS = {
  /** The system crontab: only ever edited by line. */
  crontab: '/etc/crontab',
  /** Folders of cron files, each in crontab format (with a user field). */
  fileDirs: ['/etc/cron.d'],
  /** Folders of scripts run-parts runs hourly, daily, weekly and monthly. */
  scriptDirs: ['/etc/cron.hourly', '/etc/cron.daily', '/etc/cron.weekly', '/etc/cron.monthly'],
  /** Users' crontabs, one file per user. */
  userCrontabs: '/var/spool/cron/crontabs',
} as const;

/**
 * Where Linux startup persistence lives besides cron, timers and services:
 * what the agent's evidence reads, what investigations propose to remove,
 * and what remove_persistence accepts, from this one table.
 */
export const STARTUP_LOCATIONS = {
  /** Read by every login or start: only ever edited by line, never removed whole. */
  lineOnly: ['/etc/profile', '/etc/bash.bashrc', '/etc/environment', '/etc/rc.local'],
  /** Single files that may go whole or by line. */
  fileOrLine: ['/etc/ld.so.preload'],
  /** Folders whose files may go whole or by line: login scripts, message-of-the-day scripts, udev rules, apt hooks, desktop autostart entries. */
  dropInDirs: ['/etc/profile.d', '/etc/update-motd.d', '/etc/udev/rules.d', '/etc/apt/apt.conf.d', '/etc/xdg/autostart'],
  /** A user's files (in /root or /home/USER) edited by line: shell startup files and the keys that let one in. */
  userLineOnly: ['.bashrc', '.profile', '.bash_profile', '.bash_login', '.bash_logout', '.zshrc', '.zprofile', '.ssh/authorized_keys', '.ssh/authorized_keys2'],
  /** A user's folders (in /root or /home/USER) whose files may go whole or by line. */
  userDropInDirs: ['.config/autostart'],
} as const;
