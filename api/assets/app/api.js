// How a frontend talks to Parley: queries and mutations are POSTed to /graphql with the token
// in `Authorization`; subscriptions run over one WebSocket (graphql-ws, protocol
// graphql-transport-ws) that carries the same header in `connection_init`.

/** A GraphQL error the server answered with; `code` is its `extensions.code`. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.code = errors[0]?.extensions?.code ?? 'UNKNOWN';
  }
}

/** The server did not answer (offline, restarting, a proxy's 502): worth retrying. */
export class NetworkError extends Error {}

/** graphql-ws's close code for a refused token (expired, or the account was deactivated). */
const FORBIDDEN = 4403;

export class Parley {
  /**
   * @param {string} token a JWT
   * @param {{onConnection: (state: 'live' | 'reconnecting', again: boolean) => void, onRefused: () => void}} hooks
   *   `again` is true for every connection after the first: the moment to catch up.
   *   `onRefused`: the server closed the socket because it no longer accepts the token.
   */
  constructor(token, hooks) {
    this.token = token;
    this.refused = false;
    const url = new URL('/graphql', window.location.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let connectedBefore = false;
    this.socket = graphqlWs.createClient({
      url: url.toString(),
      connectionParams: { Authorization: `Bearer ${token}` },
      // Keep trying for as long as the page is open (graphql-ws backs off between attempts),
      // unless the token itself was refused.
      retryAttempts: Infinity,
      shouldRetry: (event) => event?.code !== FORBIDDEN,
      keepAlive: 10_000,
      on: {
        connected: () => {
          hooks.onConnection('live', connectedBefore);
          connectedBefore = true;
        },
        closed: (event) => {
          if (event?.code === FORBIDDEN && !this.refused) {
            this.refused = true;
            hooks.onRefused();
          } else {
            hooks.onConnection('reconnecting', connectedBefore);
          }
        },
      },
    });
  }

  /** Runs a query or mutation and returns its `data`; throws ApiError or NetworkError. */
  async request(query, variables = {}) {
    let response;
    try {
      response = await fetch('/graphql', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new NetworkError(error.message);
    }
    const result = await response.json().catch(() => null);
    if (!result) throw new NetworkError(`HTTP ${response.status}`);
    if (result.errors?.length) throw new ApiError(result.errors);
    return result.data;
  }

  /**
   * Calls `onData` with each event's `data`; returns the function that ends the subscription.
   * graphql-ws gives up on some closes (4500: the server could not reach its database), so a
   * subscription that fails that way starts again; one the server refused with GraphQL errors
   * (a room the viewer left) does not.
   */
  subscribe(query, variables, onData) {
    let stopped = false;
    let dispose = () => {};
    const start = () => {
      dispose = this.socket.subscribe(
        { query, variables },
        {
          next: (result) => result.data && onData(result.data),
          error: (error) => {
            if (Array.isArray(error)) return console.error('subscription refused', error);
            if (!stopped && !this.refused) setTimeout(() => stopped || start(), 2000);
          },
          complete: () => {},
        },
      );
    };
    start();
    return () => {
      stopped = true;
      dispose();
    };
  }

  close() {
    this.socket.dispose();
  }
}
