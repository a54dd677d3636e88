import { v7, validate } from "uuid";

/** UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and double as cursors. */
export const uuidv7 = (): string => v7();

export const isUuid = (value: string): boolean => validate(value);
