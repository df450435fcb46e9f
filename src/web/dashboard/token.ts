// The agent's bearer token in this browser: taken from the #token=... of
// the link the agent prints at its first start, kept in localStorage. The
// fragment never reaches a server; it is dropped from the address bar at once.

const TOKEN_KEY = 'mdevkit.token';

export function takeTokenFromFragment(): void {
  const m = /(?:^#|&)token=([0-9a-f]{16,})/.exec(location.hash);
  if (m?.[1] !== undefined) {
    localStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
}

export function token(): string {
  return localStorage.getItem(TOKEN_KEY) ?? '';
}

export function saveToken(value: string): void {
  localStorage.setItem(TOKEN_KEY, value.trim());
}
