/** The names in a request (UUID, parent), checked before anything is read or written. */
import { checkParentDirName } from '../config-store.js';
import { printable } from '../paths.js';
import { parseUuid } from '../uuid-forms.js';
import { MdevError, codeOf } from '../errors.js';

/** A random v4 UUID from the global Web Crypto (loaded on first use, not at start-up). */
export const newUuid = (): string => globalThis.crypto.randomUUID();

/** A UUID argument in any spelling mdevctl accepts, canonical; anything else is refused. */
export function uuidArg(uuid: string): string {
  const u = parseUuid(uuid);
  if (u === undefined) {
    throw new MdevError('invalid-name', `Invalid UUID ${printable(uuid)}`, {
      context: { value: uuid },
    });
  }
  return u;
}

/** A request with its UUID normalised and its names checked (define and start). */
export function checkedNames<
  R extends { readonly uuid?: string | undefined; readonly parent?: string | undefined },
>(req: R): R {
  return {
    ...req,
    uuid: req.uuid === undefined ? undefined : uuidArg(req.uuid),
    parent: parentArg(req.parent),
  };
}

/**
 * A parent name must stay one path component: it names a directory under
 * /etc/mdevctl.d and sysfs. It holds no control character, and it is none
 * of the config directory's own entries (`scripts.d`: a definition there
 * could never be listed or removed).
 */
export function parentArg(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  try {
    return checkParentDirName(parent);
  } catch (err) {
    const code = codeOf(err);
    if (code === 'reserved-name' || code === 'control-character') throw err;
    throw new MdevError(
      'invalid-name',
      `Refusing parent name ${printable(parent)}: it must be one path component (no "/", NUL, "." or "..")`,
      { context: { parent } },
    );
  }
}
