namespace MessageQueue.Tests.Support;

public sealed record Order(int Id, string Kind = "order");

public sealed record Invoice(int Number);
