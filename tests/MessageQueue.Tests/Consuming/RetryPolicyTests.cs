namespace MessageQueue.Tests.Consuming;

[TestFixture]
public sealed class RetryPolicyTests
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan TenSeconds = TimeSpan.FromSeconds(10);

    /// <summary>Pairs of policies built separately from the same kind and parameters.</summary>
    private static IEnumerable<TestCaseData> EqualPairs()
    {
        yield return new TestCaseData(RetryPolicy.None, RetryPolicy.None).SetName("Equals_None_IsEqual");
        yield return new TestCaseData(RetryPolicy.Immediate(3), RetryPolicy.Immediate(3)).SetName("Equals_SameImmediate_IsEqual");
        yield return new TestCaseData(RetryPolicy.Immediate(0), RetryPolicy.Immediate(0)).SetName("Equals_SameImmediateZero_IsEqual");
        yield return new TestCaseData(RetryPolicy.Intervals(OneSecond, TenSeconds), RetryPolicy.Intervals(TimeSpan.FromMilliseconds(1000), TimeSpan.FromSeconds(10)))
            .SetName("Equals_SameIntervals_IsEqual");
        yield return new TestCaseData(RetryPolicy.Intervals(), RetryPolicy.Intervals()).SetName("Equals_EmptyIntervals_IsEqual");
        yield return new TestCaseData(RetryPolicy.Exponential(3, OneSecond, TenSeconds), RetryPolicy.Exponential(3, TimeSpan.FromMilliseconds(1000), TimeSpan.FromSeconds(10)))
            .SetName("Equals_SameExponential_IsEqual");
    }

    /// <summary>Pairs that differ in kind or in one parameter.</summary>
    private static IEnumerable<TestCaseData> DifferentPairs()
    {
        yield return new TestCaseData(RetryPolicy.None, RetryPolicy.Immediate(0)).SetName("Equals_NoneAndImmediateZero_Differ");
        yield return new TestCaseData(RetryPolicy.None, RetryPolicy.Intervals()).SetName("Equals_NoneAndEmptyIntervals_Differ");
        yield return new TestCaseData(RetryPolicy.Immediate(3), RetryPolicy.Immediate(4)).SetName("Equals_ImmediateOtherCount_Differ");
        yield return new TestCaseData(RetryPolicy.Immediate(1), RetryPolicy.Intervals(TimeSpan.Zero)).SetName("Equals_ImmediateAndZeroInterval_Differ");
        yield return new TestCaseData(RetryPolicy.Intervals(OneSecond, TenSeconds), RetryPolicy.Intervals(TenSeconds, OneSecond)).SetName("Equals_IntervalsOtherOrder_Differ");
        yield return new TestCaseData(RetryPolicy.Intervals(OneSecond, TenSeconds), RetryPolicy.Intervals(OneSecond)).SetName("Equals_IntervalsOtherLength_Differ");
        yield return new TestCaseData(RetryPolicy.Intervals(OneSecond), RetryPolicy.Intervals(OneSecond + TimeSpan.FromTicks(1))).SetName("Equals_IntervalsOneTickApart_Differ");
        yield return new TestCaseData(RetryPolicy.Exponential(3, OneSecond, TenSeconds), RetryPolicy.Exponential(4, OneSecond, TenSeconds)).SetName("Equals_ExponentialOtherCount_Differ");
        yield return new TestCaseData(RetryPolicy.Exponential(3, OneSecond, TenSeconds), RetryPolicy.Exponential(3, TimeSpan.FromSeconds(2), TenSeconds)).SetName("Equals_ExponentialOtherMin_Differ");
        yield return new TestCaseData(RetryPolicy.Exponential(3, OneSecond, TenSeconds), RetryPolicy.Exponential(3, OneSecond, TimeSpan.FromSeconds(20))).SetName("Equals_ExponentialOtherMax_Differ");
        yield return new TestCaseData(RetryPolicy.Exponential(1, OneSecond, OneSecond), RetryPolicy.Intervals(OneSecond)).SetName("Equals_ExponentialAndIntervals_Differ");
    }

    [TestCaseSource(nameof(EqualPairs))]
    public void Equals_SameKindAndParameters_EqualWithEqualHash(RetryPolicy a, RetryPolicy b)
    {
        Assert.Multiple(() =>
        {
            Assert.That(a, Is.InstanceOf<IEquatable<RetryPolicy>>());
            Assert.That(a.Equals(b), Is.True, "Equals(RetryPolicy)");
            Assert.That(b.Equals(a), Is.True, "Equals is symmetric");
            Assert.That(a.Equals((object)b), Is.True, "Equals(object)");
            Assert.That(a == b, Is.True, "==");
            Assert.That(a != b, Is.False, "!=");
            Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()), "GetHashCode");
        });
    }

    [TestCaseSource(nameof(DifferentPairs))]
    public void Equals_OtherKindOrParameter_NotEqual(RetryPolicy a, RetryPolicy b)
    {
        Assert.Multiple(() =>
        {
            Assert.That(a.Equals(b), Is.False, "Equals(RetryPolicy)");
            Assert.That(b.Equals(a), Is.False, "Equals is symmetric");
            Assert.That(a.Equals((object)b), Is.False, "Equals(object)");
            Assert.That(a == b, Is.False, "==");
            Assert.That(a != b, Is.True, "!=");
        });
    }

    [Test]
    public void Equals_Null_NotEqual()
    {
        RetryPolicy? none = null;
        Assert.Multiple(() =>
        {
            Assert.That(RetryPolicy.Immediate(1).Equals(none), Is.False);
            Assert.That(RetryPolicy.Immediate(1).Equals((object?)null), Is.False);
            Assert.That(RetryPolicy.Immediate(1) == none, Is.False);
            Assert.That(none == RetryPolicy.Immediate(1), Is.False);
            Assert.That(none == null, Is.True);
            Assert.That(RetryPolicy.Immediate(1) != none, Is.True);
        });
    }

    [Test]
    public void Intervals_CallerChangesArrayAfterwards_PolicyKeepsItsCopy()
    {
        var waits = new[] { OneSecond, TenSeconds };
        var policy = RetryPolicy.Intervals(waits);
        var hash = policy.GetHashCode();
        waits[0] = TimeSpan.FromMinutes(1);
        Assert.Multiple(() =>
        {
            Assert.That(policy, Is.EqualTo(RetryPolicy.Intervals(OneSecond, TenSeconds)));
            Assert.That(policy.GetHashCode(), Is.EqualTo(hash));
            Assert.That(policy.GetDelay(1), Is.EqualTo(OneSecond));
        });
    }

    [Test]
    public void GetDelay_EachKind_AsBefore()
    {
        var exponential = RetryPolicy.Exponential(5, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1));
        var intervals = RetryPolicy.Intervals(OneSecond, TenSeconds);
        Assert.Multiple(() =>
        {
            Assert.That(RetryPolicy.None.GetDelay(1), Is.EqualTo(TimeSpan.Zero));
            Assert.That(RetryPolicy.Immediate(3).GetDelay(2), Is.EqualTo(TimeSpan.Zero));
            Assert.That(intervals.GetDelay(1), Is.EqualTo(OneSecond));
            Assert.That(intervals.GetDelay(2), Is.EqualTo(TenSeconds));
            Assert.That(intervals.GetDelay(3), Is.EqualTo(TenSeconds), "past MaxRetries the last wait repeats");
            Assert.That(exponential.GetDelay(1), Is.EqualTo(TimeSpan.FromMilliseconds(100)));
            Assert.That(exponential.GetDelay(2), Is.EqualTo(TimeSpan.FromMilliseconds(200)));
            Assert.That(exponential.GetDelay(4), Is.EqualTo(TimeSpan.FromMilliseconds(800)));
            Assert.That(exponential.GetDelay(5), Is.EqualTo(OneSecond), "capped at the max");
            Assert.That(exponential.GetDelay(99), Is.EqualTo(OneSecond));
            Assert.That(RetryPolicy.Exponential(3, TimeSpan.Zero, OneSecond).GetDelay(3), Is.EqualTo(TimeSpan.Zero));
            Assert.That(() => exponential.GetDelay(0), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [TestCase(1, 1L)]
    [TestCase(2, 2L)]
    [TestCase(62, 1L << 61)]
    [TestCase(63, 1L << 62)]
    [TestCase(64, long.MaxValue)]
    [TestCase(65, long.MaxValue)]
    [TestCase(1000, long.MaxValue)]
    [TestCase(int.MaxValue, long.MaxValue)]
    public void GetDelay_ExponentialUpToMaxValue_DoublesThenSaturates(int attempt, long expectedTicks)
    {
        var policy = RetryPolicy.Exponential(int.MaxValue, TimeSpan.FromTicks(1), TimeSpan.MaxValue);
        Assert.That(policy.GetDelay(attempt), Is.EqualTo(TimeSpan.FromTicks(expectedTicks)));
    }

    [TestCase(1)]
    [TestCase(62)]
    [TestCase(63)]
    [TestCase(64)]
    [TestCase(1000)]
    [TestCase(int.MaxValue)]
    public void GetDelay_ExponentialHugeMin_NeverWrapsOrThrows(int attempt)
    {
        // The first wait is already more than half of TimeSpan.MaxValue: doubling it must saturate, not wrap.
        var min = TimeSpan.FromTicks((long.MaxValue / 2) + 12345);
        var policy = RetryPolicy.Exponential(int.MaxValue, min, TimeSpan.MaxValue);
        Assert.That(policy.GetDelay(attempt), Is.EqualTo(attempt == 1 ? min : TimeSpan.MaxValue));
    }

    [Test]
    public void GetDelay_ExponentialMinAbove2Pow53Ticks_ExactTicks()
    {
        // A double cannot hold every tick count above 2^53; the doubling must stay exact.
        var min = TimeSpan.FromTicks((1L << 53) + 1);
        var policy = RetryPolicy.Exponential(3, min, TimeSpan.MaxValue);
        Assert.Multiple(() =>
        {
            Assert.That(policy.GetDelay(1).Ticks, Is.EqualTo((1L << 53) + 1));
            Assert.That(policy.GetDelay(2).Ticks, Is.EqualTo((1L << 54) + 2));
        });
    }

    [Test]
    public void Intervals_MaxValue_AcceptedAndReturned()
    {
        var policy = RetryPolicy.Intervals(TimeSpan.MaxValue);
        Assert.Multiple(() =>
        {
            Assert.That(policy.GetDelay(1), Is.EqualTo(TimeSpan.MaxValue));
            Assert.That(policy.GetDelay(int.MaxValue), Is.EqualTo(TimeSpan.MaxValue));
            Assert.That(policy, Is.EqualTo(RetryPolicy.Intervals(TimeSpan.MaxValue)));
        });
    }

    [Test]
    public void ToString_NamesKindAndParameters()
    {
        Assert.Multiple(() =>
        {
            Assert.That(RetryPolicy.None.ToString(), Is.EqualTo("None"));
            Assert.That(RetryPolicy.Immediate(3).ToString(), Is.EqualTo("Immediate(3)"));
            Assert.That(RetryPolicy.Intervals(OneSecond, TenSeconds).ToString(), Is.EqualTo("Intervals(00:00:01, 00:00:10)"));
            Assert.That(RetryPolicy.Exponential(3, OneSecond, TenSeconds).ToString(), Is.EqualTo("Exponential(3, 00:00:01, 00:00:10)"));
        });
    }
}
