namespace MessageQueue.Scheduling;

/// <summary>Something the scheduler wakes at a due time (a queue with delayed messages or ack deadlines).</summary>
internal interface IDueTarget
{
    /// <summary>Called outside the scheduler's lock when a time this target asked for has come.</summary>
    void OnDue(long nowTicks);
}
