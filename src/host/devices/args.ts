/** The names in a request (UUID, parent), checked before anything is read or written. */
import { checkParentDirName } from '../config-store.js';
import { checkNoControlCharacters, printable } from '../paths.js';
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
  R extends {
    readonly uuid?: string | undefined;
    readonly parent?: string | undefined;
    readonly type?: string | undefined;
  },
>(req: R): R {
  return {
    ...req,
    uuid: req.uuid === undefined ? undefined : uuidArg(req.uuid),
    parent: parentArg(req.parent),
    type: typeArg(req.type),
  };
}

/**
 * An mdev type as a request names it. Any text mdevctl would store is
 * taken (a type the parent lacks fails when the device starts), but no
 * control character: the type is a directory name in sysfs and is printed
 * in listings.
 */
export function typeArg(type: string | undefined): string | undefined {
  return type === undefined ? undefined : checkNoControlCharacters(type, 'type name', { type });
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
