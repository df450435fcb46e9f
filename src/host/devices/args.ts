/** The names in a request (UUID, parent), checked before anything is read or written. */
import { checkComponent } from '../paths.js';
import { parseUuid } from '../uuid-forms.js';
import { MdevError } from '../errors.js';

/** A random v4 UUID from the global Web Crypto (loaded on first use, not at start-up). */
export const newUuid = (): string => globalThis.crypto.randomUUID();

/** A UUID argument in any spelling mdevctl accepts, canonical; anything else is refused. */
export function uuidArg(uuid: string): string {
  const u = parseUuid(uuid);
  if (u === undefined) {
    throw new MdevError('invalid-name', `Invalid UUID ${JSON.stringify(uuid)}`, {
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

/** A parent name must stay one path component: it names a directory under /etc/mdevctl.d and sysfs. */
export function parentArg(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  try {
    return checkComponent(parent, 'parent');
  } catch {
    throw new MdevError(
      'invalid-name',
      `Refusing parent name ${JSON.stringify(parent)}: it must be one path component (no "/", NUL, "." or "..")`,
      { context: { parent } },
    );
  }
}
