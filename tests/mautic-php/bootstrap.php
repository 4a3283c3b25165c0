<?php
// Runs the PHPUnit suite of Mautic's PHP client library (mautic/api-library) against a
// Magpie server: Debian's Guzzle and PSR packages, PSR-4 loading of the library's lib/
// and tests/, and a stand-in for php-http/discovery (not packaged by Debian) that hands
// the library a plain Guzzle client. See run.sh.
$library = getenv('MAUTIC_API_LIBRARY') ?: die("MAUTIC_API_LIBRARY is not set\n");

set_include_path(get_include_path().PATH_SEPARATOR.'/usr/share/php');
require_once '/usr/share/php/GuzzleHttp/autoload.php';
require_once '/usr/share/php/Psr/Log/autoload.php';
require_once '/usr/share/php/Psr/Http/Message/autoload.php';

spl_autoload_register(function ($class) use ($library) {
    foreach (['Mautic\\Tests\\' => '/tests/', 'Mautic\\' => '/lib/'] as $prefix => $dir) {
        if (0 === strncmp($class, $prefix, strlen($prefix))) {
            $file = $library.$dir.str_replace('\\', '/', substr($class, strlen($prefix))).'.php';
            if (is_file($file)) {
                require $file;
            }

            return;
        }
    }
});

require_once __DIR__.'/Psr18ClientDiscovery.php';
