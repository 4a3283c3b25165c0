<?php
namespace Http\Discovery;

/** Stand-in for php-http/discovery's one call the library makes: a Guzzle client. */
final class Psr18ClientDiscovery
{
    public static function find()
    {
        return new \GuzzleHttp\Client(['timeout' => 60]);
    }
}
