using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite;

/// <summary>Reads: on a second connection, so they never wait for a sync; each under one snapshot.</summary>
public sealed partial class SqliteMessageStore
{
    /// <inheritdoc/>
    public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes)
    {
        ArgumentNullException.ThrowIfNull(queue);
        long after = 0;
        while (true)
        {
            var page = ReadPage(queue, withEnvelopes, after);
            foreach (var m in page)
            {
                yield return m;
            }

            if (page.Count < PageSize)
            {
                yield break;
            }

            after = page[^1].Id;
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var found = new List<StoredMessage>(ids.Count);
        lock (_readGate)
        {
            var reader = _reader ?? throw new ObjectDisposedException(nameof(SqliteMessageStore), "The store is closed.");
            try
            {
                var read = _readOne ??= CreateCommand(reader, "SELECT id, queue, delivery_count, due, flags, envelope FROM mq_messages WHERE id = $id;", "$id");
                using var transaction = reader.BeginTransaction(deferred: true); // one snapshot for all ids
                read.Transaction = transaction;
                foreach (var id in ids)
                {
                    read.Parameters[0].Value = id;
                    using var row = read.ExecuteReader();
                    if (row.Read())
                    {
                        found.Add(ToMessage(row, withEnvelope: true));
                    }
                }

                transaction.Commit();
            }
            catch (Exception ex) when (IsReadFailure(ex))
            {
                throw new MessageStoreException($"Reading messages by id from the {_name} failed: {ex.Message}", ex);
            }
        }

        return found;
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentOutOfRangeException.ThrowIfNegative(max);
        return max == 0 || upToId <= afterId ? [] : ReadPage(queue, withEnvelopes: true, afterId, upToId, max, readyOnly: true);
    }

    private List<StoredMessage> ReadPage(string queue, bool withEnvelopes, long after, long upTo = long.MaxValue, int max = PageSize, bool readyOnly = false)
    {
        lock (_readGate)
        {
            var reader = _reader ?? throw new ObjectDisposedException(nameof(SqliteMessageStore), "The store is closed.");
            try
            {
                using var read = CreateCommand(
                    reader,
                    $"SELECT id, queue, delivery_count, due, flags, {(withEnvelopes ? "envelope" : "length(envelope)")} FROM mq_messages WHERE queue = $queue AND id > $after AND id <= $upto{(readyOnly ? " AND due = 0" : "")} ORDER BY id LIMIT $max;",
                    "$queue",
                    "$after",
                    "$upto",
                    "$max");
                read.Parameters[0].Value = queue;
                read.Parameters[1].Value = after;
                read.Parameters[2].Value = upTo;
                read.Parameters[3].Value = max;
                using var rows = read.ExecuteReader();
                var page = new List<StoredMessage>();
                while (rows.Read())
                {
                    page.Add(ToMessage(rows, withEnvelopes));
                }

                return page;
            }
            catch (Exception ex) when (IsReadFailure(ex))
            {
                throw new MessageStoreException($"Reading queue '{queue}' from the {_name} failed: {ex.Message}", ex);
            }
        }
    }
}
