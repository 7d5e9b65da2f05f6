namespace MessageQueue;

/// <summary>Which queue of a dead letter's history a redrive sends it back to.</summary>
public enum RedriveTarget
{
    /// <summary>The queue it last died in (<c>x-last-death-queue</c>, the newest death record): the default.</summary>
    LastDeath = 0,

    /// <summary>The queue it first died in (<c>x-first-death-queue</c>): for chains of dead-letter queues, the
    /// queue where the trouble started.</summary>
    FirstDeath = 1,
}
