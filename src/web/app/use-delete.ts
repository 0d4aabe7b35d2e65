import { useState } from "preact/hooks";
import { api, describeError } from "./api.ts";

/** A DELETE behind a confirmation dialog: whether it is under way, why it failed, and the confirm action. */
export function useDelete(path: string, onDeleted: () => void): { busy: boolean; error: string; confirm: () => Promise<void>; clearError: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const confirm = async () => {
    setBusy(true);
    setError("");
    try {
      await api("DELETE", path);
      onDeleted();
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, confirm, clearError: () => setError("") };
}
