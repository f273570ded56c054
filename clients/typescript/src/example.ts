// A typed Parley client in a few lines. GraphQL Code Generator reads the operations below
// (the strings marked /* GraphQL */) and ../../schema.graphql and writes a result and a
// variables type for each, so a schema change that breaks this code fails `npm run check`.

import type {
  MyRoomsQuery,
  SendMutation,
  SendMutationVariables,
  UnreadChangesSubscription,
} from './generated/graphql';

const MY_ROOMS = /* GraphQL */ `
  query MyRooms {
    viewer { handle unreadTotal rooms(first: 50) { edges { node { id kind name unreadCount latestSeq } } } }
  }
`;

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id seq body createdAt clientId } }
`;

/** Run over GraphQL over WebSocket (e.g. the graphql-ws client); its events are typed too. */
export const UNREAD_CHANGES = /* GraphQL */ `
  subscription UnreadChanges { unreadCountChanged { roomId unreadCount unreadTotal seq notify } }
`;

type Result<T> = { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };

async function request<T, V = Record<string, never>>(url: string, token: string, query: string, variables?: V): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const result = (await response.json()) as Result<T>;
  if (result.errors?.length || !result.data) {
    throw new Error(result.errors?.map((e) => `${e.extensions?.code}: ${e.message}`).join('; ') ?? 'no data');
  }
  return result.data;
}

/** The rooms with something unread, most unread first. */
export async function unreadRooms(url: string, token: string): Promise<{ name: string; unread: number }[]> {
  const data = await request<MyRoomsQuery>(url, token, MY_ROOMS);
  return data.viewer.rooms.edges
    .map(({ node }) => ({ name: node.name ?? node.id, unread: node.unreadCount }))
    .filter((room) => room.unread > 0)
    .sort((a, b) => b.unread - a.unread);
}

/**
 * Sends a message, retrying network failures with the same `clientId`: the server keeps the
 * first message per `clientId`, so a retry of a send that did arrive returns it again.
 */
export async function sendOnce(url: string, token: string, roomId: string, body: string, attempts = 3): Promise<number> {
  const variables: SendMutationVariables = { input: { roomId, body, clientId: crypto.randomUUID() } };
  for (let attempt = 1; ; attempt++) {
    try {
      const data = await request<SendMutation, SendMutationVariables>(url, token, SEND, variables);
      return data.sendMessage.seq;
    } catch (error) {
      // fetch rejects with a TypeError when the network fails; GraphQL errors are final.
      if (!(error instanceof TypeError) || attempt >= attempts) throw error;
    }
  }
}

/** What a badge shows after an `unreadCountChanged` event (older seqs are dropped). */
export function applyChange(
  shown: Map<string, { count: number; seq: number }>,
  { unreadCountChanged: change }: UnreadChangesSubscription,
): void {
  const before = shown.get(change.roomId);
  if (before && change.seq < before.seq) return;
  shown.set(change.roomId, { count: change.unreadCount, seq: change.seq });
}
