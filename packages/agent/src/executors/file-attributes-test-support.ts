/** Test material for extended attributes, shared by the quarantine tests and their lab. */

/**
 * A POSIX ACL in the kernel's own format (what `setfacl` writes to
 * system.posix_acl_access or _default): version 2, then for each entry its
 * tag, permissions and id, in tag order. Written with setfattr, so no acl
 * package is needed.
 */
export function acl(entries: [tag: 'user_obj' | 'user' | 'group_obj' | 'mask' | 'other', perm: number, id?: number][]): string {
  const TAGS = { user_obj: 0x01, user: 0x02, group_obj: 0x04, mask: 0x10, other: 0x20 };
  const bytes = Buffer.alloc(4 + 8 * entries.length);
  bytes.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id = 0xffffffff], i) => {
    bytes.writeUInt16LE(TAGS[tag], 4 + 8 * i);
    bytes.writeUInt16LE(perm, 6 + 8 * i);
    bytes.writeUInt32LE(id, 8 + 8 * i);
  });
  return `0s${bytes.toString('base64')}`;
}
/** u::rwx, u:daemon:r--, g::r-x, m::r-x, o::--- : read access for daemon on a file of mode 750. */
export const DAEMON_MAY_READ = acl([['user_obj', 7], ['user', 4, 1], ['group_obj', 5], ['mask', 5], ['other', 0]]);
